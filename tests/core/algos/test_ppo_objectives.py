"""PPO's KL-penalty and unclipped objectives (Schulman et al. 2017, Table 1) and the adaptive-β rule."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import BOX2, TINY, discrete_space, log_softmax, random_params, small_network
from purejaxrl_ppo.core.networks import policy_on_transitions, value_on_transitions
from purejaxrl_ppo.core.types import UpdateBatch

ADVANTAGES = np.array([1.0, -1.0, 2.0, -0.5, -1.0, 1.0])


# ----------------------------------------------------------------------------- the β rule
@pytest.mark.parametrize(
    "kl,expected",
    [
        (0.001, 0.5),  # d < d_targ / 1.5 = 0.00667: halve
        (0.006, 0.5),
        (0.0067, 1.0),  # just above d_targ / 1.5: keep
        (0.01, 1.0),  # on target: keep
        (0.0149, 1.0),  # just below 1.5 d_targ: keep
        (0.0151, 2.0),  # d > 1.5 d_targ = 0.015: double
        (0.5, 2.0),  # doubled once per update, however far off
    ],
)
def test_adaptive_kl_rule_hand_cases(kl, expected):
    assert float(pjp.adapt_kl_coef(jnp.float32(1.0), jnp.float32(kl), 0.01)) == pytest.approx(expected)


def test_adaptive_kl_rule_is_elementwise_and_scales_with_beta():
    beta = jnp.array([3.0, 3.0, 3.0])
    kl = jnp.array([0.001, 0.03, 0.03])
    out = np.asarray(pjp.adapt_kl_coef(beta, kl, jnp.array([0.003, 0.03, 0.01])))
    # 0.001 < 0.003/1.5 = 0.002 -> halve; 0.03 on target -> keep; 0.03 > 0.015 -> double
    np.testing.assert_allclose(out, [1.5, 3.0, 6.0])


# ----------------------------------------------------------------------------- losses vs numpy
def make_case(discrete: bool):
    """A network, params, a batch whose old policy differs from the current one, and numpy references."""
    network = small_network(discrete_space(3) if discrete else BOX2)
    params = random_params(network, 7, scale=0.5)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(6, 3)).astype(np.float32)
    new = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), policy_on_transitions(network, params, jnp.asarray(obs)))
    value = np.asarray(value_on_transitions(network, params, jnp.asarray(obs)), np.float64)
    if discrete:
        old = {"logits": new["logits"] + rng.normal(scale=0.5, size=new["logits"].shape)}
        actions = np.array([0, 1, 2, 0, 1, 2], np.int32)
        lp_new, lp_old = log_softmax(new["logits"]), log_softmax(old["logits"])
        logp_new, logp_old = lp_new[np.arange(6), actions], lp_old[np.arange(6), actions]
        kl = (np.exp(lp_old) * (lp_old - lp_new)).sum(-1)  # KL[π_old, π] per state
    else:
        old = {"mean": new["mean"] + rng.normal(scale=0.3, size=new["mean"].shape),
               "log_std": new["log_std"] + rng.normal(scale=0.1, size=new["log_std"].shape)}
        actions = (new["mean"] + 0.5 * rng.normal(size=(6, 2))).astype(np.float32)

        def gauss_logp(p):
            std = np.exp(p["log_std"])
            return (-0.5 * ((actions - p["mean"]) / std) ** 2 - p["log_std"] - 0.5 * np.log(2 * np.pi)).sum(-1)

        logp_new, logp_old = gauss_logp(new), gauss_logp(old)
        s_old, s_new = np.exp(old["log_std"]), np.exp(new["log_std"])
        kl = (np.log(s_new / s_old) + (s_old**2 + (old["mean"] - new["mean"]) ** 2) / (2 * s_new**2) - 0.5).sum(-1)
    batch = UpdateBatch(
        obs=jnp.asarray(obs), action=jnp.asarray(actions), log_prob=jnp.asarray(logp_old, jnp.float32),
        value=jnp.asarray(value, jnp.float32), advantage=jnp.asarray(ADVANTAGES, jnp.float32),
        target=jnp.asarray(value + 0.5, jnp.float32),
    )
    old_params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), old)
    ratio = np.exp(logp_new - logp_old)
    return network, params, batch, old_params, ratio, kl


@functools.lru_cache(maxsize=None)
def loss_fn(network, objective):
    return jax.jit(functools.partial(pjp.ppo_loss, network=network, clip_value_loss=False,
                                     normalize_advantages=False, objective=objective))


def call(network, objective, params, batch, clip_eps=0.2, kl_coef=0.0, old=None):
    loss, aux = loss_fn(network, objective)(params, batch=batch, clip_eps=clip_eps, vf_coef=0.5, ent_coef=0.0,
                                            kl_coef=kl_coef, old_dist_params=old)
    return float(loss), {k: float(v) for k, v in aux.items()}


@pytest.mark.parametrize("discrete", [True, False], ids=["categorical", "gaussian"])
@pytest.mark.parametrize("objective", ["kl_fixed", "kl_adaptive"])
def test_kl_penalty_loss_matches_numpy(discrete, objective):
    network, params, batch, old, ratio, kl = make_case(discrete)
    assert kl.mean() > 1e-3  # the old policy really differs
    beta = 3.0
    _, aux = call(network, objective, params, batch, kl_coef=beta, old=old)
    expected = -np.mean(ratio * ADVANTAGES) + beta * kl.mean()  # eq. (8), negated for minimisation
    assert aux["policy_loss"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("discrete", [True, False], ids=["categorical", "gaussian"])
def test_unclipped_loss_matches_numpy_and_clip_with_huge_epsilon(discrete):
    network, params, batch, old, ratio, _ = make_case(discrete)
    assert np.abs(ratio - 1).max() > 0.3  # the clip would bind at ε = 0.2
    loss_u, aux_u = call(network, "unclipped", params, batch)
    assert aux_u["policy_loss"] == pytest.approx(-np.mean(ratio * ADVANTAGES), rel=1e-4)
    loss_c, aux_c = call(network, "clip", params, batch, clip_eps=1e6)
    assert loss_u == pytest.approx(loss_c, rel=1e-6)
    grad = lambda objective, eps: jax.grad(  # noqa: E731
        lambda p: loss_fn(network, objective)(p, batch=batch, clip_eps=eps, vf_coef=0.5, ent_coef=0.0)[0])(params)
    for a, b in zip(jax.tree_util.tree_leaves(grad("unclipped", 0.2)), jax.tree_util.tree_leaves(grad("clip", 1e6))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    # and at ε = 0.2 the clip does change the loss
    assert call(network, "clip", params, batch, clip_eps=0.2)[1]["policy_loss"] != pytest.approx(aux_u["policy_loss"])


def test_kl_objective_without_old_policy_raises():
    network, params, batch, _, _, _ = make_case(True)
    with pytest.raises(ValueError, match="old_dist_params"):
        pjp.ppo_loss(params, network, batch, 0.2, 0.5, 0.0, False, False, "kl_fixed", 1.0, None)


# ----------------------------------------------------------------------------- β inside training
TINY_PPO = dict(TINY, num_minibatches=2, update_epochs=2, learning_rate=0.01)


def test_adaptive_beta_follows_the_rule_during_training():
    config = pjp.PPOConfig(**TINY_PPO, policy_objective="kl_adaptive", kl_coef=1.0, kl_target=0.003)
    m = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0)).metrics
    beta, kl = np.asarray(m["kl_coef"]), np.asarray(m["kl"])
    assert beta[0] == 1.0
    expected_next = np.asarray(pjp.adapt_kl_coef(jnp.asarray(beta[:-1]), jnp.asarray(kl[:-1]), 0.003))
    np.testing.assert_array_equal(beta[1:], expected_next)
    assert len(set(beta.tolist())) > 1  # β actually moved
    assert np.all(kl >= 0)


def test_fixed_beta_stays_constant_and_clip_logs_no_beta():
    config = pjp.PPOConfig(**TINY_PPO, policy_objective="kl_fixed", kl_coef=0.3)
    m = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0)).metrics
    np.testing.assert_array_equal(np.asarray(m["kl_coef"]), np.float32(0.3))
    assert np.all(np.asarray(m["kl"]) > 0)
    assert "kl_coef" not in jax.eval_shape(pjp.make_train(pjp.PPOConfig(**TINY_PPO)), jax.random.PRNGKey(0)).metrics


@pytest.mark.parametrize(
    "overrides,match",
    [({"policy_objective": "kl"}, "policy_objective"), ({"kl_coef": -1.0}, "kl_coef"), ({"kl_target": 0.0}, "kl_target")],
)
def test_bad_objective_settings_raise(overrides, match):
    with pytest.raises(pjp.ConfigError, match=match):
        pjp.PPOConfig(**overrides)
