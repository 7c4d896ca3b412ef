"""pjp.sweep (launch/sweep.py): numeric hyperparameters × seeds in one compile, with named axes."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import numpy as np
import pytest

from helpers import tiny_config

PPO = tiny_config("ppo", total_timesteps=2 * 16 * 5, learning_rate=0.02)
TRPO = tiny_config("trpo", total_timesteps=2 * 16 * 5)


def alone(config, num_seeds, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    return jax.jit(jax.vmap(pjp.make_train(config)))(keys).metrics


@pytest.mark.parametrize(
    "config,field,values",
    [(PPO, "clip_eps", [0.05, 0.3]),
     # PPO's in the default run; the others (same code path) in make test-all
     pytest.param(PPO.replace(policy_objective="kl_adaptive"), "kl_target", [0.001, 0.05], marks=pytest.mark.heavy),
     pytest.param(TRPO, "max_kl", [0.002, 0.05], marks=pytest.mark.heavy)],
    ids=["ppo-clip_eps", "ppo-kl_target", "trpo-max_kl"],
)
def test_swept_value_equals_a_run_configured_with_it_alone(config, field, values):
    result = pjp.sweep(config, {field: values}, num_seeds=2, seed=3)
    assert result.axes == (field, "seed", "update")
    assert result.metrics["entropy"].shape == (2, 2, config.num_updates)
    np.testing.assert_allclose(result.coords[field], values)
    for value in values[1:]:  # one single-value run per case: compiles dominate this test's time
        expected = alone(config.replace(**{field: value}), 2, seed=3)
        got = result.sel(**{field: value})
        for name in ("entropy", "episode_return", "value_loss"):
            np.testing.assert_allclose(got[name], np.asarray(expected[name]), rtol=2e-4, atol=1e-5, equal_nan=True)
    assert not np.allclose(result.metrics["entropy"][0], result.metrics["entropy"][1])  # the value mattered


def test_grid_of_two_fields_has_one_axis_each():
    result = pjp.sweep(PPO, {"clip_eps": [0.1, 0.2, 0.3], "ent_coef": [0.0, 0.01]}, num_seeds=2)
    assert result.axes == ("clip_eps", "ent_coef", "seed", "update")
    assert result.metrics["episode_return"].shape == (3, 2, 2, PPO.num_updates)
    assert result.points()[1] == {"clip_eps": 0.1, "ent_coef": 0.01}
    assert result.sel(clip_eps=0.2, ent_coef=0.0)["entropy"].shape == (2, PPO.num_updates)
    assert result.config_at(clip_eps=0.3).clip_eps == 0.3
    # seeds only
    assert pjp.sweep(PPO, None, num_seeds=3).axes == ("seed", "update")


@pytest.mark.parametrize(
    "grid,match",
    [
        ({"num_envs": [2, 4]}, "structural"),
        ({"hidden_sizes": [(8,), (16,)]}, "structural"),
        ({"policy_objective": ["clip", "unclipped"]}, "structural"),
        ({"max_kl": [0.01]}, "not a PPOConfig field"),
        ({"clip_eps": [0.1, 1.5]}, r"clip_eps must be in \(0.0, 1.0\), got 1.5"),
        ({"clip_eps": []}, "empty"),
        ({"clip_eps": [0.1, 0.1]}, "duplicates"),
        ({"clip_eps": 0.1}, "sequence"),
    ],
)
def test_bad_sweeps_raise_before_compiling(grid, match):
    with pytest.raises(pjp.ConfigError, match=match):
        pjp.sweep(PPO, grid, num_seeds=2)


def test_sel_rejects_unknown_axis_and_value():
    result = pjp.sweep(PPO, {"clip_eps": [0.1, 0.2]}, num_seeds=1)
    with pytest.raises(KeyError, match="not a swept axis"):
        result.sel(ent_coef=0.0)
    with pytest.raises(KeyError, match="not in the swept values"):
        result.sel(clip_eps=0.25)


def test_env_first_built_by_a_sweep_is_reusable():
    # make_env is memoised: an env first built inside the traced sweep would cache tracer-valued
    # parameters (Acrobot's default params are jnp arrays) and break the next sweep.
    pjp.make_env.cache_clear()
    config = PPO.replace(env_name="Acrobot-v1")
    for _ in range(2):
        assert pjp.sweep(config, {"clip_eps": [0.1, 0.2]}, num_seeds=1).metrics["entropy"].shape == (2, 1, 5)
