"""Acting with a saved policy (core/acting.py, runs/policy_files.py): ``pjp.load_run``, ``Policy.act``/``step``, export.

The deterministic actions are checked against ``pjp.evaluate`` (episode returns equal bit for bit, the
episodes replayed here step by step with ``Policy.step``) and ``greedy_action``, the samples against the
distribution computed by hand from the network's outputs, and the files by round trips. Parameters
are fresh initialisations (no training needed) with non-trivial observation statistics.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core.evaluate import greedy_action
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs.policy_files import POLICY_FILE, save_policy

pytestmark = pytest.mark.timeout(300)

NUM_SEEDS = 3


def make_policy(config, normalize: bool = True) -> pjp.Policy:
    """``NUM_SEEDS`` freshly initialised seeds, with observation statistics far from the identity."""
    env = pjp.make_env(config.env_name)
    network = pjp.make_network(config, env.action_space, env.observation_shape)
    params = jax.vmap(network.init)(jax.random.split(jax.random.PRNGKey(1), NUM_SEEDS))
    stats = None
    if normalize:
        shape = (NUM_SEEDS, *env.observation_shape)
        mean = jax.random.normal(jax.random.PRNGKey(2), shape) * 0.1
        var = jnp.exp(jax.random.normal(jax.random.PRNGKey(3), shape))
        stats = pjp.RunningMeanStd(jnp.full((NUM_SEEDS,), 100.0), mean, var)
    return pjp.Policy(config, pjp.PolicyParams(params, stats), tuple(range(NUM_SEEDS)))


CARTPOLE = pjp.PPOConfig(env_name="CartPole-v1", hidden_sizes=(16,), normalize_observations=True)
CARTPOLE_GRU = CARTPOLE.replace(policy="gru", rnn_hidden_size=8, num_envs=4, num_minibatches=2)
PENDULUM = pjp.PPOConfig(env_name="Pendulum-v1", hidden_sizes=(16,), normalize_observations=True)


def replayed_returns(policy: pjp.Policy, seed: int, key: jax.Array, num_episodes: int) -> np.ndarray:
    """First-episode returns ``[E]`` of ``E`` envs acting with ``policy.step``, one jitted step at a time from Python.

    The keys are split as ``policy_rollout`` splits them, so the episodes are evaluate's.
    """
    env, params = policy.env, policy.params_of(seed)
    reset_key, step_key = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(reset_key, num_episodes))
    step_keys = jax.random.split(step_key, (env.max_episode_steps, num_episodes))
    act, env_step = jax.jit(policy.step), jax.jit(jax.vmap(env.step))
    carry, reset = policy.initial_carry(num_episodes), jnp.ones(num_episodes, bool)
    returns, running = np.zeros(num_episodes, np.float32), np.ones(num_episodes, bool)
    for keys in step_keys:
        carry, action = act(params, carry, obs, None, True, reset)
        result = env_step(keys, state, action)
        obs, state, reset = result.obs, result.state, result.terminated | result.truncated
        returns += np.where(running, np.asarray(result.reward), np.float32(0))  # CartPole: +1 per step, exact
        running &= ~np.asarray(reset)
        if not running.any():
            return returns
    raise AssertionError("an episode outlived the episode limit")


@pytest.mark.parametrize("config", [CARTPOLE, CARTPOLE_GRU], ids=["mlp", "gru"])
def test_deterministic_steps_give_evaluate_returns_bit_for_bit(config):
    policy = make_policy(config)
    key, seed = jax.random.PRNGKey(7), 1
    params = policy.params_of(seed)
    expected = jax.jit(lambda k: pjp.evaluate(config, params.network, k, 3, params.obs_stats))(key)
    np.testing.assert_array_equal(replayed_returns(policy, seed, key, 3), expected)


# Continuous actions feed Pendulum's sin/cos dynamics, which round differently in the last bit in different
# compiled programs (XLA fuses per program): equal returns would test XLA, so the actions are compared.
@pytest.mark.parametrize("squash", ["clip", "tanh"])
def test_deterministic_continuous_actions_are_greedy_action_bit_for_bit(squash):
    config = PENDULUM.replace(action_squash=squash)
    policy = make_policy(config)
    params = policy.params_of(1)
    obs = jax.random.normal(jax.random.PRNGKey(0), (64, 3)) * 3.0
    greedy = jax.jit(lambda o: greedy_action(policy.network, params.network, (), o, jnp.ones(64, bool),
                                             params.obs_stats)[1])(obs)
    np.testing.assert_array_equal(jax.jit(policy.act)(params, obs), greedy)
    assert np.abs(greedy).max() <= 2.0 and np.abs(greedy).max() > 0.0


def test_act_on_all_seeds_with_vmap_equals_each_seed():
    policy = make_policy(PENDULUM)
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    every = jax.jit(jax.vmap(policy.act, in_axes=(0, None)))(policy.params, obs)
    assert every.shape == (NUM_SEEDS, 5, 1)
    act = jax.jit(policy.act)
    for seed in range(NUM_SEEDS):
        one = act(policy.params_of(seed), obs)
        np.testing.assert_array_equal(every[seed], one)
        single = policy.act(policy.params_of(seed), obs[2])  # one env: no batch axis in, none out
        assert single.shape == (1,)
        np.testing.assert_allclose(single, one[2], rtol=1e-6, atol=1e-6)
    keys = jax.random.split(jax.random.PRNGKey(1), NUM_SEEDS)
    sampled = jax.vmap(lambda p, k: policy.act(p, obs, k, deterministic=False))(policy.params, keys)
    for seed in range(NUM_SEEDS):
        np.testing.assert_array_equal(sampled[seed], policy.act(policy.params_of(seed), obs, keys[seed], False))


def _by_hand_dist_params(policy: pjp.Policy, params: pjp.PolicyParams, obs: jax.Array):
    """The network's distribution parameters on obs normalised here (numpy), not through act."""
    stats = params.obs_stats
    x = np.clip((np.asarray(obs) - np.asarray(stats.mean)) / np.sqrt(np.asarray(stats.var) + 1e-8), -10, 10)
    network = policy.network
    _, dist_params = network.policy(params.network, network.initial_carry((1,)), jnp.asarray(x)[None],
                                    jnp.zeros((1,), bool))
    return {k: np.asarray(v[0], np.float64) for k, v in dist_params.items()}


def test_stochastic_discrete_actions_follow_the_softmax_of_the_logits():
    policy = make_policy(CARTPOLE)
    params, obs = policy.params_of(0), jnp.asarray([0.3, -1.0, 0.05, 0.8])
    params = params._replace(network=jax.tree_util.tree_map(lambda x: x * 30.0, params.network))  # decisive logits
    logits = _by_hand_dist_params(policy, params, obs)["logits"]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    n = 20_000
    actions = np.asarray(jax.jit(jax.vmap(lambda k: policy.act(params, obs, k, False)))(
        jax.random.split(jax.random.PRNGKey(3), n)))
    assert actions.dtype == np.int32 and set(np.unique(actions)) <= {0, 1}
    freq = np.bincount(actions, minlength=2) / n
    assert 0.02 < probs[0] < 0.98, probs  # both actions likely enough for the test to mean something
    np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(probs[0] * probs[1] / n))
    assert int(policy.act(params, obs)) == int(np.argmax(logits))


def test_stochastic_continuous_actions_have_the_policy_mean_and_std():
    policy = make_policy(PENDULUM)
    params = policy.params_of(2)
    log_std = np.log(0.3)  # narrow enough that clipping to [-2, 2] never happens
    network = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.full_like(x, log_std) if "log_std" in jax.tree_util.keystr(path) else x, params.network)
    params = params._replace(network=network)
    obs = jnp.asarray([0.5, -0.2, 1.5])
    mean = _by_hand_dist_params(policy, params, obs)["mean"]
    n = 20_000
    actions = np.asarray(jax.jit(jax.vmap(lambda k: policy.act(params, obs, k, False)))(
        jax.random.split(jax.random.PRNGKey(4), n)), np.float64)
    assert actions.shape == (n, 1)
    np.testing.assert_allclose(actions.mean(0), mean, atol=4 * 0.3 / np.sqrt(n))
    np.testing.assert_allclose(actions.std(0), 0.3, rtol=0.03)
    np.testing.assert_allclose(policy.act(params, obs), np.clip(mean, -2, 2), rtol=1e-5, atol=1e-6)
    traced = jax.jit(policy.act)(params, obs, jax.random.PRNGKey(0), jnp.bool_(True))  # a traced flag selects
    np.testing.assert_array_equal(traced, jax.jit(policy.act, static_argnames="deterministic")(params, obs))


def test_a_policy_straight_from_training_output():
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    state = jax.vmap(lambda k: pjp.init_train_state(CARTPOLE, k))(keys)  # what train(key) returns, before training
    policy = pjp.Policy.from_train_output(CARTPOLE, pjp.TrainOutput({}, state))
    assert policy.num_seeds == 2 and policy.seed_indices == (0, 1)
    jax.tree_util.tree_map(np.testing.assert_array_equal, policy.params,
                           pjp.PolicyParams(state.algo_state.params, state.normalizer.obs))
    unnormalised = pjp.Policy.from_train_output(CARTPOLE.replace(normalize_observations=False), pjp.TrainOutput({}, state))
    assert unnormalised.params.obs_stats is None


def finished_run_dir(path, policy: pjp.Policy):
    """A finished run directory holding what ``load_run`` reads (config.json, policy.msgpack, complete.json)."""
    path.mkdir()
    save_policy(path / POLICY_FILE, policy.params.network, policy.params.obs_stats)
    (path / "config.json").write_text(json.dumps(policy.config.to_dict()))
    rundir.mark_complete(path, ("config.json", POLICY_FILE))
    return path


@pytest.mark.parametrize("config", [CARTPOLE_GRU, PENDULUM.replace(normalize_observations=False)],
                         ids=["gru", "pendulum-unnormalised"])
def test_run_directory_and_exported_file_give_identical_actions(config, tmp_path):
    made = make_policy(config, normalize=config.normalize_observations)
    loaded = pjp.load_run(finished_run_dir(tmp_path / "run", made))
    assert loaded.config == config and loaded.num_seeds == NUM_SEEDS and loaded.recurrent == made.recurrent
    exported = pjp.load_run(pjp.export_policy(loaded, tmp_path / "all.msgpack"))
    only = pjp.load_run(pjp.export_policy(loaded, tmp_path / "one.msgpack", seed_index=2))
    assert exported.seed_indices == (0, 1, 2) and only.seed_indices == (2,) and only.num_seeds == 1
    assert exported.config == config
    obs = jax.random.normal(jax.random.PRNGKey(5), (4, *loaded.observation_shape))
    step = jax.jit(lambda p, c, o: made.step(p, c, o, jax.random.PRNGKey(6), deterministic=False))
    reference = step(made.params_of(2), made.initial_carry(4), obs)
    for policy, seed in ((loaded, 2), (exported, 2), (only, 0)):
        got = step(policy.params_of(seed), policy.initial_carry(4), obs)
        jax.tree_util.tree_map(np.testing.assert_array_equal, got, reference)
    params, stats = pjp.load_policy(tmp_path / "one.msgpack")  # the older reader sees the same arrays
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a, np.asarray(b)[2:3]), params,
                           made.params.network)
    assert (stats is None) == (not config.normalize_observations)


def test_bad_input_is_a_one_line_config_error(tmp_path):
    policy = make_policy(CARTPOLE)
    params = policy.params_of(0)

    def refused(call, *needles):
        with pytest.raises(pjp.ConfigError) as info:
            call()
        text = str(info.value)
        assert "\n" not in text and all(n in text for n in needles), text

    refused(lambda: policy.act(params, jnp.zeros(5)), "obs has shape [5]", "[4]")
    refused(lambda: policy.act(params, jnp.zeros((2, 3, 4))), "[2, 3, 4]")
    refused(lambda: jax.jit(policy.act)(params, jnp.zeros((7, 2))), "[7, 2]")
    refused(lambda: policy.params_of(NUM_SEEDS), f"[0, {NUM_SEEDS})", str(NUM_SEEDS))
    refused(lambda: policy.params_of(-1), "[0, 3)")
    refused(lambda: policy.act(params, jnp.zeros(4), deterministic=False), "need a PRNG key")
    gru = make_policy(CARTPOLE_GRU)
    refused(lambda: gru.act(gru.params_of(0), jnp.zeros(4)), "policy.step", "initial_carry")
    refused(lambda: gru.step(gru.params_of(0), gru.initial_carry(2), jnp.zeros((3, 4))), "initial_carry(3)")

    run = finished_run_dir(tmp_path / "run", policy)
    refused(lambda: pjp.load_run(tmp_path / "absent"), "does not exist")
    refused(lambda: pjp.load_run(run / POLICY_FILE), "parameters only", "export")
    (run / "config.yaml").write_text("algo: ppo\n")
    (run / "run.json").write_text(json.dumps({rundir.COMPLETE_FILE: True}))
    (run / POLICY_FILE).write_bytes((run / POLICY_FILE).read_bytes()[:-10])  # damaged after it finished
    refused(lambda: pjp.load_run(run), "policy.msgpack is damaged", "--resume")
    (run / rundir.COMPLETE_FILE).unlink()
    refused(lambda: pjp.load_run(run), "has not finished")

    exported = pjp.export_policy(policy, tmp_path / "p.msgpack")
    tree = serialization.msgpack_restore(exported.read_bytes())
    (tmp_path / "newer.msgpack").write_bytes(serialization.msgpack_serialize({**tree, "format_version": 99}))
    refused(lambda: pjp.load_run(tmp_path / "newer.msgpack"), "format version 99", "newer")
    other = {**tree, "config": json.dumps(CARTPOLE.replace(hidden_sizes=(32,)).to_dict())}
    (tmp_path / "other.msgpack").write_bytes(serialization.msgpack_serialize(other))
    refused(lambda: pjp.load_run(tmp_path / "other.msgpack"), "do not fit", "hidden_sizes [32]")
    (tmp_path / "junk.msgpack").write_bytes(b"\x00\x01 not msgpack")
    refused(lambda: pjp.load_run(tmp_path / "junk.msgpack"), "cannot be read")
