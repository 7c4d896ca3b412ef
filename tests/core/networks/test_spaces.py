"""Multi-discrete and masked action distributions against NumPy references: log-probabilities, entropy, KL,
sampling, greedy actions, and TRPO's Fisher-vector product against an explicit Fisher matrix."""

import numpy as np
import pytest

import purejaxrl_ppo  # noqa: F401  (first: the XLA:CPU workaround)
import jax
import jax.flatten_util
import jax.numpy as jnp

from purejaxrl_ppo.core.algos.natural_gradient import make_fisher_vector_product
from purejaxrl_ppo.core.envs.base import ACTION_MASK, ActionSpace
from purejaxrl_ppo.core.networks import make_network
from purejaxrl_ppo.core.networks.base import MASKED_LOGIT, MultiCategorical, mask_logits, no_valid_action
from purejaxrl_ppo.core.networks.feedforward import ActorCritic

pytestmark = pytest.mark.timeout(300)

NVEC = (3, 4, 2)


def np_log_softmax(logits, mask=None):
    logits = np.asarray(logits, np.float64)
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    top = logits.max(-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))


def np_factors(x, nvec=NVEC):
    bounds = np.cumsum((0,) + tuple(nvec))
    return [x[..., lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def np_entropy(log_p):
    p = np.exp(log_p)
    return -np.where(p > 0, p * np.where(p > 0, log_p, 0.0), 0.0).sum(-1)


def np_kl(log_p, log_q):
    p = np.exp(log_p)
    return np.where(p > 0, p * (np.where(p > 0, log_p, 0.0) - np.where(p > 0, log_q, 0.0)), 0.0).sum(-1)


def random_mask(rng, shape, nvec=NVEC):
    """A random mask with at least one allowed action per factor."""
    mask = rng.random(shape + (sum(nvec),)) < 0.5
    for lo, n in zip(np.cumsum((0,) + nvec[:-1]), nvec):
        first = rng.integers(0, n, shape)
        np.put_along_axis(mask[..., lo:lo + n], first[..., None], True, axis=-1)
    return mask


@pytest.mark.parametrize("masked", [False, True])
def test_multi_categorical_matches_numpy(masked):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, sum(NVEC))).astype(np.float32)
    other = rng.normal(size=(5, sum(NVEC))).astype(np.float32)
    mask = random_mask(rng, (5,)) if masked else np.ones_like(logits, bool)
    p = MultiCategorical(mask_logits(jnp.asarray(logits), mask), NVEC)
    q = MultiCategorical(mask_logits(jnp.asarray(other), mask), NVEC)
    log_p = [np_log_softmax(x, m) for x, m in zip(np_factors(logits), np_factors(mask))]
    log_q = [np_log_softmax(x, m) for x, m in zip(np_factors(other), np_factors(mask))]
    # an allowed action per factor and row
    action = np.stack([np.argmax(np.where(m, rng.random(m.shape), -1), -1) for m in np_factors(mask)], -1)
    want_log_prob = sum(lp[np.arange(5), action[:, k]] for k, lp in enumerate(log_p))
    np.testing.assert_allclose(p.log_prob(jnp.asarray(action)), want_log_prob, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p.entropy(), sum(np_entropy(lp) for lp in log_p), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p.kl_divergence(q), sum(np_kl(a, b) for a, b in zip(log_p, log_q)),
                               rtol=1e-4, atol=1e-5)
    assert np.isfinite(np.asarray(p.entropy())).all() and np.isfinite(np.asarray(p.kl_divergence(q))).all()
    greedy = np.stack([np.argmax(np.where(m, x, -np.inf), -1) for x, m in zip(np_factors(logits), np_factors(mask))], -1)
    np.testing.assert_array_equal(p.mode(), greedy)


def test_sampling_never_picks_a_masked_action_and_matches_the_probabilities():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(sum(NVEC),)).astype(np.float32)
    mask = random_mask(rng, ())
    dist = MultiCategorical(mask_logits(jnp.asarray(logits), mask), NVEC)
    actions, log_probs = jax.vmap(lambda k: dist.sample_and_log_prob(seed=k))(jax.random.split(jax.random.PRNGKey(0), 20000))
    actions = np.asarray(actions)
    np.testing.assert_allclose(log_probs, dist.log_prob(jnp.asarray(actions)), rtol=1e-6, atol=1e-6)
    for k, (x, m) in enumerate(zip(np_factors(logits), np_factors(mask))):
        counts = np.bincount(actions[:, k], minlength=len(m)) / len(actions)
        assert (counts[~m] == 0).all(), (k, counts, m)
        np.testing.assert_allclose(counts, np.exp(np_log_softmax(x, m)), atol=0.015)


def test_no_valid_action_is_found_per_factor():
    space = ActionSpace.multi_discrete(NVEC, masked=True)
    mask = np.ones((3, sum(NVEC)), bool)
    mask[1, 3:7] = False  # the second factor of row 1 allows nothing
    mask[2, :2] = False   # row 2 still allows action 2 of the first factor
    np.testing.assert_array_equal(no_valid_action(space, jnp.asarray(mask)), [False, True, False])
    single = ActionSpace(discrete=True, num_actions=4, masked=True)
    np.testing.assert_array_equal(no_valid_action(single, jnp.asarray([[0, 0, 0, 0], [0, 1, 0, 0]], bool)), [True, False])


def test_action_space_validates_multi_discrete_and_masks():
    assert ActionSpace.multi_discrete((2, 3)).action_shape == (2,)
    assert ActionSpace.multi_discrete((2, 3)).action_dim == 5
    with pytest.raises(ValueError, match="num_actions == sum"):
        ActionSpace(discrete=True, num_actions=4, nvec=(2, 3))
    with pytest.raises(ValueError, match="discrete"):
        ActionSpace(discrete=False, shape=(2,), low=(-1.0, -1.0), high=(1.0, 1.0), masked=True)


def _masked_network(nvec, hidden=(8,)):
    space = ActionSpace.multi_discrete(nvec, masked=True) if len(nvec) > 1 else \
        ActionSpace(discrete=True, num_actions=nvec[0], masked=True)
    spec = {"x": jax.ShapeDtypeStruct((3,), jnp.float32), ACTION_MASK: jax.ShapeDtypeStruct((sum(nvec),), jnp.bool_)}

    class Config:
        policy, hidden_sizes, activation, action_squash = "mlp", hidden, "tanh", "clip"

    return make_network(Config, space, spec)


def test_the_policy_applies_the_mask_from_the_observation():
    network = _masked_network(NVEC)
    assert isinstance(network, ActorCritic)
    params = network.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(2)
    obs = {"x": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32), ACTION_MASK: jnp.asarray(random_mask(rng, (6,)))}
    _, dist_params, _ = network.apply(params, (), obs, jnp.zeros(6, bool))
    logits = np.asarray(dist_params["logits"])
    assert (logits[~np.asarray(obs[ACTION_MASK])] == MASKED_LOGIT).all()
    assert (logits[np.asarray(obs[ACTION_MASK])] != MASKED_LOGIT).all()


@pytest.mark.parametrize("nvec", [(5,), NVEC])
def test_fisher_vector_product_matches_the_explicit_fisher(nvec):
    """TRPO's Fv for a masked (multi-)categorical policy equals (1/M) Σᵢ Jᵢᵀ Mᵢ Jᵢ v + λv with Mᵢ the
    block-diagonal (one block per factor) diag(p) - ppᵀ of the masked probabilities, built in NumPy."""
    network = _masked_network(nvec, hidden=(4,))
    params = network.init(jax.random.PRNGKey(3))
    rng = np.random.default_rng(3)
    m = 7
    obs = {"x": jnp.asarray(rng.normal(size=(m, 3)), jnp.float32),
           ACTION_MASK: jnp.asarray(random_mask(rng, (m,), nvec))}
    theta = network.policy_params(params)
    flat_theta, unravel = jax.flatten_util.ravel_pytree(theta)
    damping = 0.1

    def raw_logits(flat):  # the actor's logits before masking
        full = network.with_policy_params(params, unravel(flat))
        return network.actor.apply(full["actor"], obs)["logits"]

    jac = np.asarray(jax.jacobian(raw_logits)(flat_theta), np.float64)  # [M, A, P]
    logits = np.asarray(raw_logits(flat_theta), np.float64)
    mask = np.asarray(obs[ACTION_MASK])
    fisher = np.zeros((flat_theta.size, flat_theta.size))
    bounds = np.cumsum((0,) + tuple(nvec))
    for i in range(m):
        block = np.zeros((sum(nvec), sum(nvec)))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            p = np.exp(np_log_softmax(logits[i, lo:hi], mask[i, lo:hi]))
            block[lo:hi, lo:hi] = np.diag(p) - np.outer(p, p)
        fisher += jac[i].T @ block @ jac[i]
    fisher /= m
    v = rng.normal(size=flat_theta.size)
    fvp = make_fisher_vector_product(network, params, obs, damping)
    got, _ = jax.flatten_util.ravel_pytree(fvp(unravel(jnp.asarray(v, jnp.float32))))
    np.testing.assert_allclose(got, fisher @ v + damping * v, rtol=2e-4, atol=2e-5)
