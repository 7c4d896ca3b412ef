"""The tanh-squashed Gaussian's entropy: a sampled estimate that is unbiased, used by the losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core.envs.base import ActionSpace
from purejaxrl_ppo.core.networks import ActorCritic, TanhGaussian, entropy, entropy_noise


def _true_entropy(mean: float, std: float, samples: int = 2_000_000) -> float:
    """H[a] for a = tanh(u), u ~ N(mean, std²), by NumPy Monte Carlo: H[u] + E[log(1 - tanh² u)]."""
    u = np.random.default_rng(0).normal(mean, std, samples)
    return 0.5 * np.log(2 * np.pi * np.e * std**2) + np.mean(np.log1p(-np.tanh(u) ** 2))


def test_sampled_entropy_is_unbiased_and_the_mean_point_estimate_is_not():
    mean, std = 0.7, 0.5
    dist = TanhGaussian(jnp.full((1,), mean), jnp.full((1,), np.log(std)), jnp.array([-1.0]), jnp.array([1.0]))
    truth = _true_entropy(mean, std)  # 0.113 nats
    noise = jax.random.normal(jax.random.PRNGKey(0), (200_000, 1))
    sampled = jax.vmap(lambda e: dist.entropy(e))(noise)
    assert float(sampled.mean()) == pytest.approx(truth, abs=5e-3)
    assert float(dist.entropy()) - truth > 0.15  # the estimate at the mean (0.271) is biased upwards
    # the estimate at zero noise is the estimate at the mean
    assert float(dist.entropy(jnp.zeros((1,)))) == pytest.approx(float(dist.entropy()), abs=1e-6)


def test_noise_is_drawn_only_where_the_entropy_has_no_closed_form():
    continuous = ActionSpace(discrete=False, shape=(1,), low=(-2.0,), high=(2.0,))
    tanh = ActorCritic(observation_shape=(3,), action_space=continuous, action_squash="tanh")
    clip = ActorCritic(observation_shape=(3,), action_space=continuous, action_squash="clip")
    discrete = ActorCritic(observation_shape=(3,), action_space=ActionSpace(discrete=True, num_actions=2))
    key = jax.random.PRNGKey(0)
    assert entropy_noise(tanh, key, (4, 1)).shape == (4, 1)
    assert entropy_noise(clip, key, (4, 1)) is None and entropy_noise(discrete, key, (4,)) is None
    params = clip.init(key)
    dist_params = clip.policy(params, (), jnp.zeros((4, 3)), None)[1]
    gaussian = clip.distribution(dist_params)
    np.testing.assert_array_equal(np.asarray(entropy(gaussian, None)), np.asarray(gaussian.entropy()))


def test_ppo_loss_uses_the_noise_it_is_given():
    space = pjp.make_env("Pendulum-v1").action_space
    network = ActorCritic(observation_shape=(3,), action_space=space, action_squash="tanh", hidden_sizes=(4,))
    params = network.init(jax.random.PRNGKey(1))
    m = 16
    batch = pjp.UpdateBatch(
        obs=jax.random.normal(jax.random.PRNGKey(2), (m, 3)), action=jax.random.normal(jax.random.PRNGKey(3), (m, 1)),
        log_prob=jnp.zeros(m), value=jnp.zeros(m), advantage=jnp.ones(m), target=jnp.zeros(m),
    )
    args = (params, network, batch, 0.2, 0.5, 0.01, True, True)
    _, at_mean = pjp.ppo_loss(*args)
    _, zero_noise = pjp.ppo_loss(*args, entropy_noise=jnp.zeros((m, 1)))
    _, noisy = pjp.ppo_loss(*args, entropy_noise=2.0 * jnp.ones((m, 1)))
    assert float(zero_noise["entropy"]) == pytest.approx(float(at_mean["entropy"]), abs=1e-6)
    assert float(noisy["entropy"]) < float(zero_noise["entropy"]) - 0.1  # u pushed into saturation


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_training_with_tanh_squashing_reports_the_sampled_entropy(algo):
    extra = {"num_minibatches": 2, "ent_coef": 0.01} if algo == "ppo" else {"critic_minibatches": 2, "ent_coef": 0.01}
    config = pjp.config_from_dict({"algo": algo, "env_name": "Pendulum-v1", "num_envs": 2, "num_steps": 8,
                                   "total_timesteps": 32, "hidden_sizes": [8], "action_squash": "tanh", **extra})
    out = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(out.metrics["entropy"])).all()
