"""PPO's annealed clip range (``anneal_clip_eps``, SB3's ``lin_`` clip range): ε_k = clip_eps · (1 - k / num_updates)."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import TINY, discrete_space, fast_jit, random_params, small_network
from purejaxrl_ppo.core.algos import make_algorithm
from purejaxrl_ppo.core.algos.ppo.update import optimizer_steps
from purejaxrl_ppo.core.networks import policy_on_transitions
from purejaxrl_ppo.core.types import UpdateBatch

CLIP = 0.3
NETWORK = small_network(discrete_space(2))


def config(**overrides) -> pjp.PPOConfig:
    """TINY (6 updates) with 2 epochs × 2 minibatches of 16 and a constant learning rate."""
    return pjp.PPOConfig(**{**TINY, "hidden_sizes": (4,), "num_minibatches": 2, "update_epochs": 2,
                            "anneal_lr": False, "clip_eps": CLIP, **overrides})


def batch_and_params():
    """Random params and a [16, 2] batch whose recorded log-probs differ from the policy's (ratios ≠ 1)."""
    params = random_params(NETWORK, 3, scale=0.7)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(16, 2, 3)).astype(np.float32)
    action = rng.integers(0, 2, size=(16, 2)).astype(np.int32)
    logits = np.asarray(policy_on_transitions(NETWORK, params, jnp.asarray(obs.reshape(32, 3)))["logits"])
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    logp = logp[np.arange(32), action.reshape(32)].reshape(16, 2)
    old_logp = logp + rng.normal(scale=0.4, size=logp.shape)
    value = rng.normal(size=(16, 2))
    batch = UpdateBatch(obs=jnp.asarray(obs), action=jnp.asarray(action), log_prob=jnp.asarray(old_logp, jnp.float32),
                        value=jnp.asarray(value, jnp.float32), advantage=jnp.asarray(rng.normal(size=(16, 2)), jnp.float32),
                        target=jnp.asarray(value + rng.normal(scale=0.5, size=(16, 2)), jnp.float32))
    return params, batch


def state_at_update(algo, params, k: int):
    """``algo``'s state with ``params`` and the optimiser counts of the start of update ``k``."""
    state = algo.init(jax.random.PRNGKey(0)).replace(params=params)
    steps = k * algo.config.update_epochs * algo.config.num_minibatches
    return state.replace(opt_state=optax.tree_utils.tree_set(state.opt_state, count=jnp.asarray(steps, jnp.int32)))


@fast_jit
def run_update(cfg: pjp.PPOConfig, state, batch, key):
    """One PPO update under ``cfg`` (a pytree: its traced fields, clip_eps among them, are arguments)."""
    return make_algorithm(cfg, NETWORK).update(state, batch, key)


def test_annealed_update_is_the_constant_update_with_the_annealed_eps():
    cfg = config(anneal_clip_eps=True)
    assert cfg.num_updates == 6
    params, batch = batch_and_params()
    annealed = make_algorithm(cfg, NETWORK)
    key = jax.random.PRNGKey(1)
    for k in (0, 2, 5):
        expected = CLIP * (1.0 - k / 6)  # the independent computation: update k of TINY's 6
        state = state_at_update(annealed, params, k)
        assert int(optimizer_steps(state.opt_state)) == 4 * k
        assert float(annealed.clip_eps(state.opt_state)) == pytest.approx(expected, rel=1e-6)
        new_state, metrics = run_update(cfg, state, batch, key)
        assert float(metrics["clip_eps"]) == pytest.approx(expected, rel=1e-6)
        # The same update with a constant ε = ε_k: the loss, value clipping and clip_fraction all use it.
        ref_state, ref_metrics = run_update(config(clip_eps=expected), state, batch, key)
        assert "clip_eps" not in ref_metrics
        for name in ("clip_fraction", "value_loss", "policy_loss"):
            np.testing.assert_allclose(metrics[name], ref_metrics[name], rtol=1e-5, atol=1e-7)
        for a, b in zip(jax.tree_util.tree_leaves(new_state.params), jax.tree_util.tree_leaves(ref_state.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        if k:  # and not the unannealed update: the clip binds on this batch
            _, plain_metrics = run_update(config(), state, batch, key)
            assert float(plain_metrics["clip_fraction"]) < float(metrics["clip_fraction"])


def test_eps_schedule_over_a_run_matches_the_learning_rate_fraction():
    cfg = config(anneal_clip_eps=True, anneal_lr=True, learning_rate=1e-3)
    algo = make_algorithm(cfg, NETWORK)
    state = algo.init(jax.random.PRNGKey(0))
    for k in range(cfg.num_updates):
        state = state.replace(opt_state=optax.tree_utils.tree_set(state.opt_state, count=jnp.asarray(4 * k)))
        frac = 1.0 - k / cfg.num_updates
        assert float(algo.clip_eps(state.opt_state)) == pytest.approx(CLIP * frac, rel=1e-6)
        assert float(algo.learning_rate(jnp.asarray(4 * k + 3))) == pytest.approx(1e-3 * frac, rel=1e-6)


def test_default_eps_is_the_config_value_untouched():
    algo = make_algorithm(config(), NETWORK)
    assert algo.clip_eps(algo.init(jax.random.PRNGKey(0)).opt_state) is algo.config.clip_eps
