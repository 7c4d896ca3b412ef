"""Structured observations end to end: the layout (images, masks, privileged entries), the asymmetric critic,
per-entry normalisation, acting from a loaded policy with dict observations, and short PPO/TRPO/GRU runs on a
masked dict-observation env (tests/toy_envs.py) that never take a forbidden action."""

import dataclasses

import numpy as np
import pytest

import purejaxrl_ppo as pjp
import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ACTION_MASK, observation_spec
from purejaxrl_ppo.core.networks import make_network
from purejaxrl_ppo.core.networks.encoders import observation_layout
from purejaxrl_ppo.core.normalization import init_observation_stats, normalize_observation, update_observation_stats
from toy_envs import MaskedChoice

pytestmark = pytest.mark.timeout(600)

pjp.register_env("toy/masked-choice", MaskedChoice)
pjp.register_env("toy/masked-choice-2", lambda: MaskedChoice(factors=2))


def test_layout_reads_images_masks_and_privileged_entries():
    layout = observation_layout(observation_spec(MaskedChoice()), privileged_keys=("privileged_state",))
    kinds = {leaf.key: (leaf.kind, leaf.actor) for leaf in layout.leaves}
    assert kinds == {"action_mask": ("mask", True), "image": ("image", True), "privileged_state": ("vector", False),
                     "target": ("vector", True)}
    assert [leaf.key for leaf in layout.actor_leaves()] == ["image", "target"]
    assert [leaf.key for leaf in layout.critic_leaves()] == ["image", "privileged_state", "target"]
    # a flat float observation keeps the flattening MLP under "auto", MinAtar's float grids included
    assert observation_layout((10, 10, 4)).flat and observation_layout((4,)).flat
    assert not observation_layout((10, 10, 4), torso="cnn").flat
    assert observation_layout(jax.ShapeDtypeStruct((8, 8, 3), jnp.uint8)).leaves[0].kind == "image"
    with pytest.raises(ValueError, match="not entries of the observation"):
        observation_layout(observation_spec(MaskedChoice()), privileged_keys=("nope",))
    with pytest.raises(ValueError, match="cannot be privileged"):
        observation_layout(observation_spec(MaskedChoice()), privileged_keys=(ACTION_MASK,))


def _config(**kw):
    return pjp.PPOConfig(env_name="toy/masked-choice", cnn_channels=(4,), **kw)


def test_the_actor_never_sees_the_privileged_entry_and_the_critic_does():
    env = pjp.make_env("toy/masked-choice")
    network = make_network(_config(), env.action_space, observation_spec(env))
    params = network.init(jax.random.PRNGKey(0))
    obs, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(1), 4))
    other = {**obs, "privileged_state": obs["privileged_state"] + 5.0}
    _, dist_a, value_a = network.apply(params, (), obs, jnp.zeros(4, bool))
    _, dist_b, value_b = network.apply(params, (), other, jnp.zeros(4, bool))
    np.testing.assert_array_equal(dist_a["logits"], dist_b["logits"])
    assert not np.allclose(value_a, value_b)
    assert "cnn_image" in params["actor"]["params"]["Encoder_0"]
    with pytest.raises(ValueError, match="shared torso"):
        make_network(_config(shared_torso=True), env.action_space, observation_spec(env)).init(jax.random.PRNGKey(0))


def test_normalisation_is_per_float_entry_and_never_touches_images_or_masks():
    spec = observation_spec(MaskedChoice())
    stats = init_observation_stats(spec)
    assert sorted(stats) == ["privileged_state", "target"]
    rng = np.random.default_rng(0)
    batch = {"target": jnp.asarray(rng.normal(3.0, 2.0, (64, 4)), jnp.float32),
             "privileged_state": jnp.asarray(rng.normal(-1.0, 0.5, (64, 2)), jnp.float32),
             "image": jnp.full((64, 4, 4, 1), 200, jnp.uint8), ACTION_MASK: jnp.ones((64, 4), bool)}
    stats = update_observation_stats(stats, batch)
    out = normalize_observation(stats, batch)
    np.testing.assert_allclose(np.asarray(out["target"]).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["privileged_state"]).std(0), 1.0, atol=1e-3)
    assert out["image"].dtype == jnp.uint8 and (np.asarray(out["image"]) == 200).all()
    assert out[ACTION_MASK].dtype == jnp.bool_


@pytest.mark.parametrize("algo,policy,env", [  # the default run keeps TRPO on multi-discrete masks; all in test-all
    pytest.param("ppo", "mlp", "toy/masked-choice", marks=pytest.mark.heavy), ("trpo", "mlp", "toy/masked-choice-2"),
    pytest.param("ppo", "gru", "toy/masked-choice-2", marks=pytest.mark.heavy)])
def test_training_on_a_masked_dict_env_never_takes_a_forbidden_action(algo, policy, env):
    config_cls = pjp.PPOConfig if algo == "ppo" else pjp.TRPOConfig
    config = config_cls(env_name=env, total_timesteps=1024, num_envs=4, num_steps=32, policy=policy,
                        cnn_channels=(4,), hidden_sizes=(16,), rnn_hidden_size=8, normalize_observations=True)
    out = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0))
    returns = np.asarray(out.metrics["episode_return"])
    assert np.isfinite(returns[-1])
    assert (returns[np.isfinite(returns)] >= 0).all()  # a forbidden action would cost -10
    assert np.isfinite(np.asarray(out.metrics["entropy"])).all()


@dataclasses.dataclass(frozen=True)
class NothingAllowed(MaskedChoice):
    """After the first step, a state that forbids every action."""

    def _obs(self, targets, masks, t):
        obs = super()._obs(targets, masks, t)
        return {**obs, ACTION_MASK: jnp.where(t > 0, False, obs[ACTION_MASK])}


def test_a_state_with_no_valid_action_is_a_clear_error():
    pjp.register_env("toy/nothing-allowed", NothingAllowed)
    config = pjp.PPOConfig(env_name="toy/nothing-allowed", total_timesteps=256, num_envs=2, num_steps=16,
                           cnn_channels=(4,), hidden_sizes=(8,))
    with pytest.raises(Exception, match="allow no action"):
        jax.block_until_ready(jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0)))
