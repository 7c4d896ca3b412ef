"""ppo_loss against numpy values computed from chosen probability ratios."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import BOX2, discrete_space, log_softmax, random_params, small_network
from purejaxrl_ppo.core.networks import policy_on_transitions, value_on_transitions
from purejaxrl_ppo.core.types import UpdateBatch

EPS = 0.2

# jitted once per (network, clip_value_loss, normalize_advantages): far cheaper than eager op-by-op dispatch
loss_fn = jax.jit(pjp.ppo_loss, static_argnums=(1, 6, 7))

# Chosen ratios r and (un-normalised) advantages A, one row per regime:
#   r=1.5, A=+1   above 1+ε, positive A  -> clipped:   min(1.5, 1.2) = 1.2
#   r=0.5, A=-1   below 1-ε, negative A  -> clipped:   min(-0.5, -0.8) = -0.8
#   r=1.1, A=+2   inside the interval    -> unclipped: 2.2
#   r=0.9, A=-0.5 inside the interval    -> unclipped: -0.45
#   r=1.5, A=-1   above 1+ε, negative A  -> unclipped: min(-1.5, -1.2) = -1.5
#   r=0.5, A=+1   below 1-ε, positive A  -> unclipped: min(0.5, 0.8) = 0.5
RATIOS = np.array([1.5, 0.5, 1.1, 0.9, 1.5, 0.5])
ADVANTAGES = np.array([1.0, -1.0, 2.0, -0.5, -1.0, 1.0])
# Hand-computed: policy loss = -(1.2 - 0.8 + 2.2 - 0.45 - 1.5 + 0.5) / 6 = -1.15 / 6
HAND_POLICY_LOSS = -1.15 / 6
# |r - 1| > ε for the four rows with r in {1.5, 0.5}
HAND_CLIP_FRACTION = 4 / 6
# Value moves V - V_old (the new value V comes from the network; V_old = V - move)
VALUE_MOVES = np.array([0.5, -0.5, 0.1, 0.0, 0.3, -0.05])
# Target offsets relative to V_old
TARGET_OFFSETS = np.array([1.0, 0.2, -0.3, 0.4, -1.0, 0.6])


@pytest.fixture(scope="module")
def discrete_setup():
    network = small_network(discrete_space(2))
    # the init's 0.01-gain head gives a near-uniform policy: use random weights instead, so
    # log-probs and the entropy are informative
    params = random_params(network, 42)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 3)).astype(np.float32)
    actions = np.array([0, 1, 1, 0, 1, 0], np.int32)
    dist_params, value = jax.jit(
        lambda p, o: (policy_on_transitions(network, p, o), value_on_transitions(network, p, o))
    )(params, jnp.asarray(obs))
    logits = np.asarray(dist_params["logits"], np.float64)
    logp_all = log_softmax(logits)
    logp_new = logp_all[np.arange(6), actions]  # numpy log π(a|s), independent of distrax
    value_new = np.asarray(value, np.float64)
    return network, params, obs, actions, logp_all, logp_new, value_new


def make_batch(obs, actions, logp_new, value_new, ratios=RATIOS, advantages=ADVANTAGES):
    old_values = value_new - VALUE_MOVES
    targets = old_values + TARGET_OFFSETS
    return UpdateBatch(
        obs=jnp.asarray(obs, jnp.float32),
        action=jnp.asarray(actions),
        log_prob=jnp.asarray(logp_new - np.log(ratios), jnp.float32),  # log π_old = log π_new - log r
        value=jnp.asarray(old_values, jnp.float32),
        advantage=jnp.asarray(advantages, jnp.float32),
        target=jnp.asarray(targets, jnp.float32),
    ), old_values, targets


def expected_policy_loss(ratios, adv, eps):
    return -np.mean(np.minimum(ratios * adv, np.clip(ratios, 1 - eps, 1 + eps) * adv))


def expected_value_loss(value_new, old_values, targets, eps, clip):
    err = (value_new - targets) ** 2
    if clip:
        v_clipped = old_values + np.clip(value_new - old_values, -eps, eps)
        err = np.maximum(err, (v_clipped - targets) ** 2)
    return 0.5 * np.mean(err)


def categorical_entropy(logp_all):
    return np.mean(-(np.exp(logp_all) * logp_all).sum(-1))


def call_loss(network, params, batch, clip_eps=EPS, vf_coef=0.5, ent_coef=0.01, clip_value_loss=True, normalize=False):
    loss, aux = loss_fn(params, network, batch, clip_eps, vf_coef, ent_coef, clip_value_loss, normalize)
    return float(loss), {k: float(v) for k, v in aux.items()}


def test_policy_loss_both_clipping_regimes(discrete_setup):
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    batch, _, _ = make_batch(obs, actions, logp_new, value_new)
    _, aux = call_loss(network, params, batch)
    assert expected_policy_loss(RATIOS, ADVANTAGES, EPS) == pytest.approx(HAND_POLICY_LOSS, rel=1e-12)
    assert aux["policy_loss"] == pytest.approx(HAND_POLICY_LOSS, rel=1e-5)


@pytest.mark.parametrize(
    "ratio,adv,expected",
    [
        (1.5, 1.0, -1.2),  # above 1+ε, A > 0: clipped to (1+ε) A
        (0.5, -1.0, 0.8),  # below 1-ε, A < 0: clipped to (1-ε) A
        (1.1, 2.0, -2.2),  # inside: r A
        (1.5, -1.0, 1.5),  # above 1+ε, A < 0: pessimistic unclipped r A
        (0.5, 1.0, -0.5),  # below 1-ε, A > 0: pessimistic unclipped r A
    ],
)
def test_policy_loss_single_regime(discrete_setup, ratio, adv, expected):
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    batch, _, _ = make_batch(obs, actions, logp_new, value_new, np.full(6, ratio), np.full(6, adv))
    _, aux = call_loss(network, params, batch)
    assert aux["policy_loss"] == pytest.approx(expected, rel=1e-5)


def test_policy_gradient_is_zero_when_clipped(discrete_setup):
    # in the clipped regimes the surrogate is flat: no actor gradient
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    ratios = np.array([1.5, 0.5, 1.5, 0.5, 1.5, 0.5])
    adv = np.array([1.0, -1.0, 2.0, -2.0, 0.5, -0.5])
    batch, _, _ = make_batch(obs, actions, logp_new, value_new, ratios, adv)
    policy_grad = jax.jit(jax.grad(lambda p, b: pjp.ppo_loss(p, network, b, EPS, 0.5, 0.0, True, False)[1]["policy_loss"]))
    grads = policy_grad(params, batch)
    for leaf in jax.tree_util.tree_leaves(grads["actor"]):
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)
    # unclipped: the actor gradient is non-zero
    batch, _, _ = make_batch(obs, actions, logp_new, value_new, np.full(6, 1.05), adv)
    grads = policy_grad(params, batch)
    assert max(float(np.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(grads["actor"])) > 1e-4


@pytest.mark.parametrize("clip_value_loss", [True, False])
def test_value_loss_clipping_on_and_off(discrete_setup, clip_value_loss):
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    batch, old_values, targets = make_batch(obs, actions, logp_new, value_new)
    _, aux = call_loss(network, params, batch, clip_value_loss=clip_value_loss)
    expected = expected_value_loss(value_new, old_values, targets, EPS, clip_value_loss)
    assert aux["value_loss"] == pytest.approx(expected, rel=1e-5)
    # the chosen values make clipping matter, so the two settings really differ
    assert expected_value_loss(value_new, old_values, targets, EPS, True) > 1.05 * expected_value_loss(
        value_new, old_values, targets, EPS, False
    )


def test_entropy_kl_clip_fraction_and_total(discrete_setup):
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    batch, old_values, targets = make_batch(obs, actions, logp_new, value_new)
    vf_coef, ent_coef = 0.7, 0.05
    loss, aux = call_loss(network, params, batch, vf_coef=vf_coef, ent_coef=ent_coef)

    entropy = categorical_entropy(logp_all)
    assert 0.05 < entropy < np.log(2) - 0.01  # non-trivial policy
    assert aux["entropy"] == pytest.approx(entropy, rel=1e-5)

    approx_kl = np.mean((RATIOS - 1.0) - np.log(RATIOS))  # k3 estimator
    assert aux["approx_kl"] == pytest.approx(approx_kl, rel=1e-4)
    assert aux["clip_fraction"] == pytest.approx(HAND_CLIP_FRACTION, abs=1e-7)

    expected = (
        expected_policy_loss(RATIOS, ADVANTAGES, EPS)
        + vf_coef * expected_value_loss(value_new, old_values, targets, EPS, True)
        - ent_coef * entropy
    )
    assert loss == pytest.approx(expected, rel=1e-5)

    # the entropy term enters with a minus sign, scaled by ent_coef
    loss0, _ = call_loss(network, params, batch, vf_coef=vf_coef, ent_coef=0.0)
    assert loss - loss0 == pytest.approx(-ent_coef * entropy, rel=1e-3)


def test_approx_kl_is_k3_estimator_with_asymmetric_ratios(discrete_setup):
    # mean(r) != 1 here, so k3 = E[(r-1) - log r] differs from the naive E[-log r]
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    ratios = np.array([1.3, 0.6, 1.05, 0.95, 2.0, 0.7])
    batch, _, _ = make_batch(obs, actions, logp_new, value_new, ratios, ADVANTAGES)
    _, aux = call_loss(network, params, batch)
    k3 = np.mean((ratios - 1.0) - np.log(ratios))
    assert abs(k3 - np.mean(-np.log(ratios))) > 0.05
    assert aux["approx_kl"] == pytest.approx(k3, rel=1e-4)
    assert aux["clip_fraction"] == pytest.approx(4 / 6)  # 1.3, 0.6, 2.0, 0.7
    assert aux["policy_loss"] == pytest.approx(expected_policy_loss(ratios, ADVANTAGES, EPS), rel=1e-5)


def test_clip_fraction_depends_on_eps(discrete_setup):
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    batch, _, _ = make_batch(obs, actions, logp_new, value_new)
    # with ε = 0.05, also r = 1.1 and r = 0.9 lie outside: all six rows
    _, aux = call_loss(network, params, batch, clip_eps=0.05)
    assert aux["clip_fraction"] == pytest.approx(1.0)
    assert aux["policy_loss"] == pytest.approx(expected_policy_loss(RATIOS, ADVANTAGES, 0.05), rel=1e-5)


def test_normalized_advantages(discrete_setup):
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    adv = np.array([3.0, -1.0, 0.5, 2.0, -4.0, 1.5])
    batch, _, _ = make_batch(obs, actions, logp_new, value_new, RATIOS, adv)
    _, aux = call_loss(network, params, batch, normalize=True)
    norm_adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # population std over the minibatch
    assert aux["policy_loss"] == pytest.approx(expected_policy_loss(RATIOS, norm_adv, EPS), rel=1e-5)
    # different from the un-normalised loss (the test can tell them apart)
    assert abs(expected_policy_loss(RATIOS, norm_adv, EPS) - expected_policy_loss(RATIOS, adv, EPS)) > 0.1


def test_ratio_one_gives_minus_mean_advantage_and_zero_kl(discrete_setup):
    network, params, obs, actions, logp_all, logp_new, value_new = discrete_setup
    batch, _, _ = make_batch(obs, actions, logp_new, value_new, np.ones(6), ADVANTAGES)
    _, aux = call_loss(network, params, batch)
    assert aux["policy_loss"] == pytest.approx(-ADVANTAGES.mean(), abs=1e-5)
    assert aux["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert aux["clip_fraction"] == 0.0


def test_continuous_gaussian_loss_and_entropy():
    network = small_network(BOX2)
    params = random_params(network, 1, scale=0.5)
    log_std = np.array([0.3, -0.5], np.float32)
    params["actor"]["params"]["log_std"] = jnp.asarray(log_std)
    rng = np.random.default_rng(1)
    M = 5
    obs = rng.normal(size=(M, 3)).astype(np.float32)
    actions = rng.normal(size=(M, 2)).astype(np.float32)
    dist_params, value = jax.jit(
        lambda p, o: (policy_on_transitions(network, p, o), value_on_transitions(network, p, o))
    )(params, jnp.asarray(obs))
    mean = np.asarray(dist_params["mean"], np.float64)
    sigma = np.exp(log_std.astype(np.float64))
    # numpy diagonal-Gaussian log density of the actions
    logp = np.sum(-0.5 * ((actions - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi), axis=-1)
    value_new = np.asarray(value, np.float64)
    adv = rng.normal(size=M)
    targets = rng.normal(size=M)
    batch = UpdateBatch(
        obs=jnp.asarray(obs),
        action=jnp.asarray(actions),
        log_prob=jnp.asarray(logp, jnp.float32),  # ratio 1 if the package's log-prob matches
        value=jnp.asarray(value_new, jnp.float32),  # V_old = V: value clipping is inactive
        advantage=jnp.asarray(adv, jnp.float32),
        target=jnp.asarray(targets, jnp.float32),
    )
    loss, aux = call_loss(network, params, batch, vf_coef=0.5, ent_coef=0.1)
    entropy = np.sum(0.5 * np.log(2 * np.pi * np.e) + np.log(sigma))  # same for every state
    assert np.isfinite(loss)
    assert aux["entropy"] == pytest.approx(entropy, rel=1e-5)
    assert aux["approx_kl"] == pytest.approx(0.0, abs=1e-5)
    assert aux["policy_loss"] == pytest.approx(-adv.mean(), abs=1e-4)
    value_loss = 0.5 * np.mean((value_new - targets) ** 2)
    assert aux["value_loss"] == pytest.approx(value_loss, rel=1e-5)
    assert loss == pytest.approx(-adv.mean() + 0.5 * value_loss - 0.1 * entropy, abs=1e-4)
