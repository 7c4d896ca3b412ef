"""Recurrent policies in the rollout and both updates: what the update replays equals what the rollout
recorded, bootstrap values continue each episode's carry, the Fisher-vector product through the
recurrence equals the Hessian of the mean KL, sequence minibatches, config rules, and training runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import purejaxrl_ppo as pjp
from helpers import fast_jit
from purejaxrl_ppo.core.algos.base import (
    batch_policy,
    batch_policy_and_value,
    batch_value,
    flat_fields,
    for_update,
    select_envs,
)
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.core.envs import make_env
from purejaxrl_ppo.core.iteration import make_update_batch
from purejaxrl_ppo.core.networks import make_network
from purejaxrl_ppo.core.normalization import RunningMeanStd
from purejaxrl_ppo.core.rollout import bootstrap_values, collect, reset_envs

SMALL = dict(rnn_hidden_size=8, hidden_sizes=(8,), context_len=4, num_heads=2, embed_dim=8, num_envs=4, num_steps=12)


def small_config(algo="ppo", policy="gru", env="CartPole-v1", **overrides):
    fields = {**SMALL, "env_name": env, "policy": policy, "total_timesteps": 4 * 12 * 2, **overrides}
    if algo == "ppo":
        return pjp.PPOConfig(num_minibatches=2, update_epochs=1, **fields)
    return pjp.TRPOConfig(critic_minibatches=2, critic_epochs=1, fisher_subsample=2, cg_iters=3, line_search_steps=3,
                          **fields)


def rollout_batch(config, seed=0, normalize=False):
    """A rollout of a freshly initialised policy, already past a few episode ends, as an UpdateBatch."""
    env = make_env(config.env_name)
    network = make_network(config, env.action_space, env.observation_shape)
    params = network.init(jax.random.PRNGKey(seed))
    obs_dim = env.observation_shape[0]
    stats = RunningMeanStd(jnp.float32(10.0), jnp.linspace(-0.5, 0.5, obs_dim), jnp.linspace(0.5, 2.0, obs_dim)) \
        if normalize else None

    @fast_jit
    def run(key):
        runner = reset_envs(env, network, key, config.num_envs)
        runner, _ = collect(env, network, params, runner, jax.random.fold_in(key, 1), 7, stats)  # carries mid-episode
        initial = runner.carry
        runner, traj = collect(env, network, params, runner, jax.random.fold_in(key, 2), config.num_steps, stats)
        return traj, make_update_batch(config, network, params, traj, stats, initial)

    traj, batch = run(jax.random.PRNGKey(seed + 1))
    return network, params, traj, batch


POLICIES = ["gru", "attention"]
#: (policy, shared torso, observation normalisation): half of the grid in CI, the rest in make test-all.
REPLAY_CASES = [(p, shared, norm) for p in POLICIES for shared in (False, True) for norm in (False, True)]
IN_CI = {("gru", False, True), ("gru", True, False), ("attention", False, False), ("attention", True, True)}


@pytest.mark.parametrize(("policy", "shared", "normalize"),
                         [c if c in IN_CI else pytest.param(*c, marks=pytest.mark.heavy) for c in REPLAY_CASES])
def test_update_replays_the_rollouts_log_probs_and_values(policy, shared, normalize):
    config = small_config(policy=policy, shared_torso=shared, normalize_observations=normalize)
    network, params, traj, batch = rollout_batch(config, normalize=normalize)
    assert bool(traj.done.any()) and not bool(batch.episode_start[0].all())  # episodes end inside, carries differ
    # PPO's loss evaluates both heads in one pass; TRPO's surrogate, KL and critic call them apart
    outputs = fast_jit(lambda p, b: (batch_policy_and_value(network, p, b), batch_policy(network, p, b),
                                     batch_value(network, p, b)))(params, batch)
    (dist_params, value), trpo_dist_params, trpo_value = outputs
    flat = flat_fields(batch)
    for dist, values in ((dist_params, value), (trpo_dist_params, trpo_value)):
        log_prob = network.distribution(dist).log_prob(flat.action)
        np.testing.assert_allclose(log_prob, flat.log_prob, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(values, flat.value, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("policy", POLICIES)
def test_bootstrap_continues_each_episodes_carry(policy):
    config = small_config(policy=policy)
    network, params, traj, _ = rollout_batch(config)
    values = fast_jit(lambda p, t: bootstrap_values(network, p, t))(params, traj)
    done = np.asarray(traj.done)
    # where the episode went on, final_obs is the next obs, seen from the same carry: V(obs[t+1])
    went_on = ~done[:-1]
    np.testing.assert_allclose(np.asarray(values)[:-1][went_on], np.asarray(traj.value)[1:][went_on], atol=1e-5)
    # where it ended, V(final_obs) continues the ended episode's carry, not a fresh one
    t, n = np.argwhere(done)[0]
    carry = jax.tree_util.tree_map(lambda c: c[t, n][None], traj.carry)
    _, expected = network.value(params, carry, traj.final_obs[t, n][None, None], jnp.zeros((1, 1), bool))
    _, fresh = network.value(params, network.initial_carry((1,)), traj.final_obs[t, n][None, None],
                             jnp.ones((1, 1), bool))
    np.testing.assert_allclose(values[t, n], expected[0, 0], atol=1e-5)
    assert abs(float(values[t, n]) - float(fresh[0, 0])) > 1e-6


def test_sequence_minibatches_keep_whole_env_sequences():
    config = small_config()
    network, params, _, batch = rollout_batch(config)
    env_major = for_update(network, batch)
    assert env_major.obs.shape[:2] == (config.num_envs, config.num_steps)
    picked = select_envs(batch, jnp.array([2, 0]))
    np.testing.assert_array_equal(picked.obs, np.asarray(batch.obs)[:, [2, 0]])
    np.testing.assert_array_equal(picked.initial_carry["actor"], np.asarray(batch.initial_carry["actor"])[[2, 0]])
    np.testing.assert_array_equal(env_major.time_major().obs, batch.obs)


def test_fisher_vector_product_through_the_recurrence_is_the_kl_hessian():
    config = small_config(algo="trpo", rnn_hidden_size=3, hidden_sizes=(3,), num_envs=2, num_steps=5)
    network, params, _, batch = rollout_batch(config)
    theta = network.policy_params(params)
    flat, unravel = ravel_pytree(theta)

    def mean_kl(vector):
        old = jax.lax.stop_gradient(network.policy(params, batch.initial_carry, batch.obs, batch.episode_start)[1])
        full = network.with_policy_params(params, unravel(vector))
        new = network.policy(full, batch.initial_carry, batch.obs, batch.episode_start)[1]
        lp_old, lp_new = jax.nn.log_softmax(old["logits"]), jax.nn.log_softmax(new["logits"])
        return jnp.mean(jnp.sum(jnp.exp(lp_old) * (lp_old - lp_new), -1))

    hessian = np.asarray(fast_jit(jax.hessian(mean_kl))(flat), np.float64)
    vectors = np.random.default_rng(0).normal(size=(3, flat.size)).astype(np.float32)
    damping = 0.1

    @fast_jit
    def products(vs):
        fvp = pjp.make_fisher_vector_product(network, params, batch, damping)
        return jax.vmap(lambda v: ravel_pytree(fvp(unravel(v)))[0])(vs)

    got = np.asarray(products(jnp.asarray(vectors)), np.float64)
    expected = vectors @ hessian.T + damping * vectors
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-5)


def test_config_rules_for_recurrent_policies():
    with pytest.raises(ConfigError, match="num_minibatches = 3 must divide num_envs = 4"):
        pjp.PPOConfig(policy="gru", num_envs=4, num_steps=12, num_minibatches=3)
    pjp.PPOConfig(policy="mlp", num_envs=4, num_steps=12, num_minibatches=3)  # transitions: 48 / 3 is fine
    with pytest.raises(ConfigError, match="critic_minibatches = 8 must divide num_envs = 4"):
        pjp.TRPOConfig(policy="gru", num_envs=4, num_steps=16, critic_minibatches=8)
    with pytest.raises(ConfigError, match="shared_torso is not supported by TRPO.*trust region"):
        pjp.TRPOConfig(shared_torso=True)
    with pytest.raises(ConfigError, match="embed_dim = 10 is not divisible by num_heads = 4"):
        pjp.PPOConfig(policy="attention", embed_dim=10, num_heads=4)


@pytest.mark.slow
@pytest.mark.parametrize(("algo", "policy", "shared"), [
    pytest.param("ppo", "gru", False, marks=pytest.mark.heavy),  # in CI through the resume and CLI tests
    pytest.param("ppo", "gru", True, marks=pytest.mark.heavy),
    ("trpo", "gru", False), ("ppo", "attention", True),
])
def test_training_runs_and_every_accepted_trpo_step_keeps_the_kl_bound(algo, policy, shared):
    config = small_config(algo=algo, policy=policy, shared_torso=shared, total_timesteps=4 * 12 * 3)
    out = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0))
    metrics = {k: np.asarray(v) for k, v in out.metrics.items()}
    assert np.isfinite(metrics["value_loss"]).all() and np.isfinite(metrics["entropy"]).all()
    if algo == "trpo":
        accepted = metrics["line_search_accepted"] > 0
        assert accepted.any() and (metrics["kl"][accepted] <= config.max_kl + 1e-7).all()
    else:
        assert (metrics["approx_kl"] > 0).all()  # the policy moved
