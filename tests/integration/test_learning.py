"""Learning tests: each algorithm must actually solve or improve a task (slow; seeded).

CartPole-v1: median final return ≥ 475 over 8 seeds at 5e5 env steps with the
library defaults. Pendulum-v1: the median final return must clearly beat the
first updates' (random-policy) return with the documented Pendulum settings.
"""

import jax
import numpy as np
import pytest

import purejaxrl_ppo as pjp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NUM_SEEDS = 8

# Pendulum needs a larger batch and a shorter horizon than the CartPole defaults.
PENDULUM = dict(env_name="Pendulum-v1", num_envs=16, num_steps=128, total_timesteps=300_000, gamma=0.95, ent_coef=0.0)


def train_seeds(config):
    keys = jax.random.split(jax.random.PRNGKey(42), NUM_SEEDS)
    out = jax.jit(jax.vmap(pjp.make_train(config)))(keys)
    return np.asarray(out.metrics["episode_return"])


@pytest.mark.parametrize("config_cls", [pjp.PPOConfig, pjp.TRPOConfig], ids=["ppo", "trpo"])
def test_solves_cartpole(config_cls):
    returns = train_seeds(config_cls(env_name="CartPole-v1", total_timesteps=500_000))
    finals = pjp.final_returns(returns)
    assert np.median(finals) >= 475, finals


@pytest.mark.parametrize(
    "config",
    [
        pjp.PPOConfig(**PENDULUM, update_epochs=10, num_minibatches=32, learning_rate=1e-3),
        pjp.TRPOConfig(**PENDULUM, max_kl=0.02, critic_epochs=10, critic_minibatches=32),
    ],
    ids=["ppo", "trpo"],
)
@pytest.mark.heavy  # ~1 min each on 2 cores; CI keeps the CartPole ones (make test-all runs these)
def test_improves_on_pendulum(config):
    returns = train_seeds(config)
    start = np.nanmean(returns[:, :10])  # random policy: about -1200
    finals = pjp.final_returns(returns)
    assert start < -1000, start
    assert np.median(finals) > start + 400, (start, finals)
