"""The network initialisation options: ``log_std_init`` (initial log σ) and ``ortho_init`` (orthogonal or PyTorch's
``nn.Linear`` init, SB3's ``policy_kwargs``)."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import numpy as np
import pytest

from helpers import BOX2, discrete_space
from purejaxrl_ppo.core.networks import ActorCritic, make_network
from purejaxrl_ppo.core.networks.feedforward import SharedActorCritic


def test_log_std_at_init_equals_log_std_init():
    for cls in (ActorCritic, SharedActorCritic):
        params = cls((3,), BOX2, hidden_sizes=(4,), log_std_init=-3.29).init(jax.random.PRNGKey(0))
        log_std = params["actor"]["params"]["log_std"] if cls is ActorCritic else params["params"]["log_std"]
        np.testing.assert_array_equal(log_std, np.full(2, -3.29, np.float32))
        dist = cls((3,), BOX2, hidden_sizes=(4,), log_std_init=-3.29).policy(params, (), np.zeros((1, 1, 3)), None)[1]
        np.testing.assert_array_equal(dist["log_std"], np.full((1, 1, 2), -3.29, np.float32))
    default = ActorCritic((3,), BOX2, hidden_sizes=(4,)).init(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(default["actor"]["params"]["log_std"], np.zeros(2))


def test_config_fields_reach_the_network():
    cfg = pjp.PPOConfig(env_name="Pendulum-v1", log_std_init=-1.5, ortho_init=False)
    network = make_network(cfg, BOX2, (3,))
    assert network.log_std_init == -1.5 and network.ortho_init is False
    gru = make_network(pjp.PPOConfig(env_name="Pendulum-v1", policy="gru", log_std_init=-1.5), BOX2, (3,))
    head = gru._policy_head()  # the recurrent networks' policy head
    params = head.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
    np.testing.assert_array_equal(params["params"]["log_std"], np.full(2, -1.5, np.float32))


def test_bad_values_raise():
    with pytest.raises(pjp.ConfigError, match="log_std_init"):
        pjp.PPOConfig(env_name="Pendulum-v1", log_std_init=5.0)
    with pytest.raises(pjp.ConfigError, match="ortho_init"):
        pjp.TRPOConfig(policy="gru", ortho_init=False)


def _kernels(params):
    return params["actor"]["params"]["MLP_0"], params["critic"]["params"]["MLP_0"]


def test_ortho_init_gives_orthogonal_kernels_and_zero_biases():
    params = ActorCritic((64,), discrete_space(2), hidden_sizes=(64, 64)).init(jax.random.PRNGKey(0))
    for mlp in _kernels(params):
        w = np.asarray(mlp["Dense_1"]["kernel"], np.float64)  # [64, 64], gain √2
        np.testing.assert_allclose(w.T @ w, 2.0 * np.eye(64), atol=1e-4)
        assert not np.any(mlp["Dense_0"]["bias"])


def test_ortho_init_false_is_pytorch_linear_init():
    network = ActorCritic((64,), discrete_space(2), hidden_sizes=(64, 64), ortho_init=False)
    params = network.init(jax.random.PRNGKey(0))
    for mlp in _kernels(params):
        for name, fan_in in (("TorchDense_0", 64), ("TorchDense_1", 64), ("TorchDense_2", 64)):
            bound = 1.0 / np.sqrt(fan_in)
            w, b = np.asarray(mlp[name]["kernel"], np.float64), np.asarray(mlp[name]["bias"], np.float64)
            assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
            assert np.any(b)  # biases drawn too, not zero
        w = np.asarray(mlp["TorchDense_1"]["kernel"], np.float64)
        # U(±1/√64) has variance 1/(3·64): WᵀW ≈ I/3 on the diagonal, far from any multiple of I off it.
        np.testing.assert_allclose(np.diag(w.T @ w).mean(), 1.0 / 3.0, rtol=0.05)
        gram = w.T @ w / np.diag(w.T @ w).mean()
        assert np.abs(gram - np.eye(64)).max() > 0.2  # not orthogonal
        assert np.abs(w).max() > 0.95 * (1.0 / 8.0)  # spread over the whole bound
    # The heads ignore the 0.01 / 1.0 gains, as SB3 does without ortho_init.
    head = np.asarray(params["actor"]["params"]["MLP_0"]["TorchDense_2"]["kernel"])
    assert np.abs(head).max() > 0.05
    shared = SharedActorCritic((3,), BOX2, hidden_sizes=(4,), ortho_init=False).init(jax.random.PRNGKey(0))
    assert np.any(shared["params"]["torso_0"]["bias"]) and np.abs(shared["params"]["torso_0"]["kernel"]).max() <= 3**-0.5
