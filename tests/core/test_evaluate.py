"""evaluate() (core/evaluate.py) and periodic evaluation inside training (gymnax, fast)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import TINY, leaves_equal
from purejaxrl_ppo.core.evaluate import first_episode_returns


def test_first_episode_returns_matches_a_loop():
    rng = np.random.default_rng(0)
    reward = rng.normal(size=(9, 4)).astype(np.float32)
    done = rng.random((9, 4)) < 0.3
    done[:, 3] = False
    expected = []
    for e in range(4):
        ends = np.flatnonzero(done[:, e])
        expected.append(reward[: ends[0] + 1, e].sum() if len(ends) else np.nan)
    np.testing.assert_allclose(first_episode_returns(jnp.asarray(reward), jnp.asarray(done)), expected, rtol=1e-5)


def test_evaluate_runs_whole_deterministic_episodes():
    config = pjp.PPOConfig(env_name="CartPole-v1", num_envs=2, num_steps=8, total_timesteps=16)
    env = pjp.make_env(config.env_name)
    params = pjp.make_network(config, env.action_space, env.observation_shape).init(jax.random.PRNGKey(0))
    returns = jax.jit(lambda k: pjp.evaluate(config, params, k, 5))(jax.random.PRNGKey(1))
    assert returns.shape == (5,) and np.isfinite(returns).all()
    assert ((returns >= 1) & (returns <= 500)).all()
    with pytest.raises(ValueError, match="obs_stats"):
        pjp.evaluate(config.replace(normalize_observations=True), params, jax.random.PRNGKey(1), 2)


# ----------------------------------------------------------------------------- periodic evaluation
EVAL_TINY = dict(TINY, num_minibatches=2, update_epochs=1, normalize_observations=True)


def test_eval_config_is_validated():
    with pytest.raises(pjp.ConfigError, match="eval_every.*-1"):
        pjp.PPOConfig(eval_every=-1)
    with pytest.raises(pjp.ConfigError, match="eval_episodes.*0"):
        pjp.TRPOConfig(eval_every=2, eval_episodes=0)
    assert pjp.PPOConfig().eval_every == 0  # off by default


def test_periodic_eval_equals_evaluate_and_leaves_training_unchanged():
    config = pjp.PPOConfig(**EVAL_TINY, eval_every=2, eval_episodes=3)
    plain = config.replace(eval_every=0)
    key = jax.random.PRNGKey(0)
    out = jax.jit(pjp.make_train(config))(key)
    base = jax.jit(pjp.make_train(plain))(key)
    assert "eval_return" not in base.metrics  # off: the metrics are those of a run without the feature
    evals = np.asarray(out.metrics.pop("eval_return"))
    leaves_equal((out.metrics, out.state), (base.metrics, base.state))  # evaluating does not touch training
    assert np.isnan(evals[0::2]).all() and np.isfinite(evals[1::2]).all()

    state = jax.jit(lambda k: pjp.init_train_state(plain, k))(key)
    two_updates = jax.jit(lambda s: pjp.train_updates(plain, s, 2))
    evaluate = jax.jit(lambda s: pjp.evaluate(config, s.algo_state.params, pjp.evaluation_key(s), 3, s.normalizer.obs))
    for update in (2, 4, 6):
        state, _ = two_updates(state)
        np.testing.assert_allclose(evals[update - 1], np.mean(evaluate(state)), rtol=1e-6)


@pytest.mark.heavy  # chunking replays the same scan: tests/core/test_loop.py checks chunked == one scan in CI
def test_periodic_eval_lands_on_the_same_updates_when_chunked():
    from purejaxrl_ppo.launch.chunked import train_seeds_chunked

    config = pjp.PPOConfig(**EVAL_TINY, eval_every=2, eval_episodes=2)
    whole = jax.jit(jax.vmap(pjp.make_train(config)))(jax.random.split(jax.random.PRNGKey(4), 2))
    chunked = train_seeds_chunked(config, num_seeds=2, seed=4, plan=[3, 3])  # the 2nd chunk starts mid-period
    evals = np.asarray(whole.metrics["eval_return"])
    np.testing.assert_array_equal(np.isfinite(evals), np.tile([False, True], (2, 3)))
    for name, values in whole.metrics.items():  # other compiled programs: equal up to float rounding
        np.testing.assert_allclose(chunked.metrics[name], np.asarray(values), rtol=1e-5, atol=1e-6, err_msg=name)


def _count_conds(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "cond"
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", None)
                if inner is not None and hasattr(inner, "eqns"):
                    count += _count_conds(inner)
                elif hasattr(sub, "eqns"):
                    count += _count_conds(sub)
    return count


def test_periodic_eval_stays_a_branch_under_vmap_when_the_offset_is_unbatched():
    """A batched predicate would turn the cond into a select that evaluates after every update."""
    config = pjp.PPOConfig(**EVAL_TINY, eval_every=2)
    states = jax.vmap(lambda k: pjp.init_train_state(config, k))(jax.random.split(jax.random.PRNGKey(0), 2))

    def conds(cfg, first_update):
        fn = jax.vmap(lambda s, u: pjp.train_updates(cfg, s, 2, u), in_axes=(0, None))
        return _count_conds(jax.make_jaxpr(fn)(states, first_update).jaxpr)

    off = conds(config.replace(eval_every=0), 0)
    assert conds(config, 0) == off + 1  # a real branch: the evaluation runs only on evaluation updates
    with_batched_offset = jax.vmap(lambda s: pjp.train_updates(config, s, 2))  # offset read from the state
    assert _count_conds(jax.make_jaxpr(with_batched_offset)(states).jaxpr) == off
