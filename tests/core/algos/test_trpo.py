"""TRPO pieces: Fisher-vector products, conjugate gradient, the policy step and the full update."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from helpers import BOX2, discrete_space, fast_jit, log_softmax, random_actor_params, small_network, softmax, time_major
from purejaxrl_ppo.core.algos.natural_gradient import tree_axpy, tree_vdot
from purejaxrl_ppo.core.algos.trpo.update import mean_kl, surrogate
from purejaxrl_ppo.core.networks import policy_on_transitions, value_on_transitions
from purejaxrl_ppo.core.types import UpdateBatch

DAMPING = 0.1
NUM_OBS = 8


# ----------------------------------------------------------------------------- helpers
def discrete_network():
    return small_network(discrete_space(3))


def continuous_network():
    return small_network(BOX2)


def actor_policy(network, actor_params, obs):
    """Distribution parameters of the policy with actor parameters ``actor_params`` on flat ``obs [M, ...]``."""
    return policy_on_transitions(network, {"actor": actor_params}, obs)


def explicit_fisher(network, actor_params, obs):
    """F = mean_i J_iᵀ M_i J_i from jacfwd of the distribution parameters w.r.t. the flat params (float64)."""
    flat, unravel = ravel_pytree(actor_params)
    if network.action_space.discrete:

        def dist_vec(theta):
            return actor_policy(network, unravel(theta), obs)["logits"]  # [M, A]

    else:

        def dist_vec(theta):
            d = actor_policy(network, unravel(theta), obs)
            return jnp.concatenate([d["mean"], d["log_std"]], axis=-1)  # [M, 2A]

    jac = np.asarray(fast_jit(jax.jacfwd(dist_vec))(flat), np.float64)  # [M, K, P]
    out = np.asarray(fast_jit(dist_vec)(flat), np.float64)  # [M, K]
    num, _, dim = jac.shape
    fisher = np.zeros((dim, dim))
    for i in range(num):
        if network.action_space.discrete:
            p = softmax(out[i])
            m = np.diag(p) - np.outer(p, p)
        else:
            a = out.shape[1] // 2
            sigma2 = np.exp(2.0 * out[i, a:])
            m = np.diag(np.concatenate([1.0 / sigma2, np.full(a, 2.0)]))
        fisher += jac[i].T @ m @ jac[i]
    return fisher / num, flat, unravel


def kl_hessian(network, actor_params, obs):
    """Hessian of mean KL(π_old ‖ π_θ) at θ = θ_old, with the KL written out by hand."""
    flat, unravel = ravel_pytree(actor_params)
    old = jax.lax.stop_gradient(actor_policy(network, actor_params, obs))

    def mean_kl(theta):
        new = actor_policy(network, unravel(theta), obs)
        if network.action_space.discrete:
            lp_old = jax.nn.log_softmax(old["logits"])
            lp_new = jax.nn.log_softmax(new["logits"])
            return jnp.mean(jnp.sum(jnp.exp(lp_old) * (lp_old - lp_new), -1))
        s_old, s_new = jnp.exp(old["log_std"]), jnp.exp(new["log_std"])
        kl = new["log_std"] - old["log_std"] + (s_old**2 + (old["mean"] - new["mean"]) ** 2) / (2 * s_new**2) - 0.5
        return jnp.mean(jnp.sum(kl, -1))

    return np.asarray(fast_jit(jax.hessian(mean_kl))(flat), np.float64)


def fvp_flat(network, actor_params, obs, vectors):
    """The package's (F + damping I) v for each flat v, returned flat."""
    _, unravel = ravel_pytree(actor_params)

    @fast_jit
    def apply(actor, o, vs):
        fvp = pjp.make_fisher_vector_product(network, {"actor": actor}, o, DAMPING)  # v is shaped like the actor part
        return jax.vmap(lambda v: ravel_pytree(fvp(unravel(v)))[0])(vs)

    return np.asarray(apply(actor_params, obs, jnp.asarray(vectors, jnp.float32)), np.float64)


# ----------------------------------------------------------------------------- (a) Fisher-vector products
@pytest.fixture(scope="module", params=["discrete", "continuous"])
def fisher_case(request):
    if request.param == "discrete":
        network = discrete_network()
        actor_params = random_actor_params(network, 0)
    else:
        network = continuous_network()
        actor_params = random_actor_params(network, 1)
        # non-trivial, unequal standard deviations so the 1/σ² block matters
        actor_params["params"]["log_std"] = jnp.asarray([0.4, -0.6], jnp.float32)
    obs = jnp.asarray(np.random.default_rng(2).normal(size=(NUM_OBS, 3)), jnp.float32)
    fisher, flat, _ = explicit_fisher(network, actor_params, obs)
    return network, actor_params, obs, fisher, flat


def test_explicit_fisher_is_symmetric_psd(fisher_case):
    _, _, _, fisher, _ = fisher_case
    np.testing.assert_allclose(fisher, fisher.T, atol=1e-10)
    eig = np.linalg.eigvalsh(fisher)
    assert eig.min() > -1e-6 * eig.max()
    assert eig.max() > 1e-3  # not the zero matrix


def test_fisher_vector_product_matches_explicit_fisher(fisher_case):
    network, actor_params, obs, fisher, flat = fisher_case
    vs = np.random.default_rng(3).normal(size=(3, flat.size))
    got = fvp_flat(network, actor_params, obs, vs)
    for v, g in zip(vs, got):
        expected = fisher @ v + DAMPING * v
        np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_fisher_equals_kl_hessian_at_old_params(fisher_case):
    network, actor_params, obs, fisher, flat = fisher_case
    hess = kl_hessian(network, actor_params, obs)
    # the two references agree with each other...
    np.testing.assert_allclose(hess, fisher, atol=2e-5 * np.abs(fisher).max())
    # ...and the package's product agrees with the Hessian one
    vs = np.random.default_rng(4).normal(size=(2, flat.size))
    got = fvp_flat(network, actor_params, obs, vs)
    for v, g in zip(vs, got):
        expected = hess @ v + DAMPING * v
        np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


# ----------------------------------------------------------------------------- (b) conjugate gradient
def random_spd(rng, n, low=1.0, high=10.0):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * rng.uniform(low, high, size=n)) @ q.T


@pytest.mark.parametrize("seed", [0, 1])
def test_conjugate_gradient_flat_spd(seed):
    rng = np.random.default_rng(seed)
    n = 10
    a = random_spd(rng, n)
    b = rng.normal(size=n)
    a32 = jnp.asarray(a, jnp.float32)
    x = np.asarray(pjp.conjugate_gradient(lambda v: a32 @ v, jnp.asarray(b, jnp.float32), n, 1e-10))
    expected = np.linalg.solve(a, b)
    np.testing.assert_allclose(x, expected, atol=1e-4 * max(1.0, np.abs(expected).max()))
    # a single iteration is *not* the solution (the iteration count matters)
    x1 = np.asarray(pjp.conjugate_gradient(lambda v: a32 @ v, jnp.asarray(b, jnp.float32), 1, 1e-10))
    assert np.abs(x1 - expected).max() > 1e-2


def test_conjugate_gradient_pytree_block_diagonal():
    rng = np.random.default_rng(5)
    a1, a2 = random_spd(rng, 3), random_spd(rng, 4)
    b = {"w": rng.normal(size=3), "b": rng.normal(size=(2, 2))}
    a1j, a2j = jnp.asarray(a1, jnp.float32), jnp.asarray(a2, jnp.float32)

    def matvec(v):
        return {"w": a1j @ v["w"], "b": (a2j @ v["b"].reshape(-1)).reshape(2, 2)}

    x = pjp.conjugate_gradient(matvec, jax.tree_util.tree_map(lambda t: jnp.asarray(t, jnp.float32), b), 7, 1e-10)
    assert set(x) == {"w", "b"} and x["b"].shape == (2, 2)
    np.testing.assert_allclose(np.asarray(x["w"]), np.linalg.solve(a1, b["w"]), atol=1e-4)
    np.testing.assert_allclose(np.asarray(x["b"]).reshape(-1), np.linalg.solve(a2, b["b"].reshape(-1)), atol=1e-4)


def test_conjugate_gradient_zero_rhs_gives_zeros():
    a = jnp.asarray(random_spd(np.random.default_rng(6), 5), jnp.float32)
    x = np.asarray(pjp.conjugate_gradient(lambda v: a @ v, jnp.zeros(5, jnp.float32), 5, 1e-10))
    assert np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, np.zeros(5))


def test_tree_vdot_and_axpy_act_on_every_leaf():
    a = {"w": jnp.asarray([1.0, 2.0]), "b": {"c": jnp.asarray([[3.0]])}}
    b = {"w": jnp.asarray([4.0, -1.0]), "b": {"c": jnp.asarray([[0.5]])}}
    assert float(tree_vdot(a, b)) == pytest.approx(1 * 4 - 2 + 1.5)
    out = tree_axpy(2.0, a, b)
    np.testing.assert_allclose(out["w"], [6.0, 3.0])
    np.testing.assert_allclose(out["b"]["c"], [[6.5]])


# ----------------------------------------------------------------------------- (c) the TRPO step
@pytest.fixture(scope="module")
def trpo_setup():
    config = pjp.TRPOConfig(
        env_name="CartPole-v1", num_envs=4, num_steps=32, total_timesteps=4 * 32 * 10, max_kl=0.01, hidden_sizes=(16,)
    )
    env = pjp.make_env("CartPole-v1")
    network = pjp.make_network(config, env.action_space, env.observation_shape)
    algo = pjp.TRPO(config, network)
    state = fast_jit(algo.init)(jax.random.PRNGKey(0))
    policy_step = fast_jit(algo.policy_step)  # compiled once, shared by the tests below
    forward = fast_jit(lambda p, o: (policy_on_transitions(network, p, o)["logits"], value_on_transitions(network, p, o)))

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(128, 4)).astype(np.float32)
    actions = rng.integers(0, 2, size=128).astype(np.int32)
    logits, values = (np.asarray(x, np.float64) for x in forward(state.params, jnp.asarray(obs)))
    log_prob = log_softmax(logits)[np.arange(128), actions]  # the network's own log-probs at init
    advantages = rng.normal(size=128)
    targets = 1.0 + 2.0 * obs[:, 0] - obs[:, 1]
    batch = UpdateBatch(  # flat [B]: what policy_step and critic_fit take (update flattens a [T, N] one itself)
        obs=jnp.asarray(obs),
        action=jnp.asarray(actions),
        log_prob=jnp.asarray(log_prob, jnp.float32),
        value=jnp.asarray(values, jnp.float32),
        advantage=jnp.asarray(advantages, jnp.float32),
        target=jnp.asarray(targets, jnp.float32),
    )
    return config, network, algo, state, forward, batch, logits, policy_step


FISHER_KEY = jax.random.PRNGKey(2)  # draws the Fisher's transitions


def test_policy_step_respects_trust_region_and_improves_surrogate(trpo_setup):
    config, network, algo, state, forward, batch, old_logits, policy_step = trpo_setup
    new_actor, metrics = policy_step(state.params, batch, FISHER_KEY)  # full params in, the new actor part out
    assert float(metrics["line_search_accepted"]) == 1.0

    new_logits = np.asarray(forward({"actor": new_actor, "critic": state.params["critic"]}, batch.obs)[0], np.float64)
    lp_old, lp_new = log_softmax(old_logits), log_softmax(new_logits)
    kl = np.mean(np.sum(np.exp(lp_old) * (lp_old - lp_new), -1))
    assert kl <= config.max_kl + 1e-6
    assert kl > 1e-3 * config.max_kl  # the policy actually moved
    assert float(metrics["kl"]) == pytest.approx(kl, rel=1e-2, abs=1e-7)

    adv = np.asarray(batch.advantage, np.float64)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    a = np.asarray(batch.action)
    idx = np.arange(a.size)
    old_surrogate = np.mean(adv)  # ratio 1
    new_surrogate = np.mean(np.exp(lp_new[idx, a] - lp_old[idx, a]) * adv)
    assert new_surrogate > old_surrogate
    assert float(metrics["surrogate_improvement"]) == pytest.approx(new_surrogate - old_surrogate, rel=1e-2, abs=1e-6)


def test_line_search_backtracks_into_trust_region(trpo_setup):
    # With almost no damping (cg_damping must be > 0) the subsampled Fisher is near-singular: the full natural step overshoots
    # the KL bound and only the line search brings the step back inside it.
    config, network, algo, state, forward, batch, old_logits, policy_step = trpo_setup
    undamped = config.replace(cg_damping=1e-6)
    # the config goes in as a pytree argument, so its hyperparameters are traced
    traced_step = fast_jit(lambda cfg, params, b, k: pjp.TRPO(cfg, network).policy_step(params, b, k))
    new_actor, metrics = traced_step(undamped, state.params, batch, FISHER_KEY)
    assert float(metrics["line_search_accepted"]) == 1.0
    assert float(metrics["line_search_trials"]) > 1.0
    new_logits = np.asarray(forward({"actor": new_actor, "critic": state.params["critic"]}, batch.obs)[0], np.float64)
    lp_old, lp_new = log_softmax(old_logits), log_softmax(new_logits)
    kl = np.mean(np.sum(np.exp(lp_old) * (lp_old - lp_new), -1))
    assert 0.0 < kl <= config.max_kl + 1e-6


def test_policy_step_with_zero_advantages_is_rejected(trpo_setup):
    config, network, algo, state, forward, batch, old_logits, policy_step = trpo_setup
    zero_batch = batch._replace(advantage=jnp.zeros_like(batch.advantage))
    actor = state.params["actor"]
    new_actor, metrics = policy_step(state.params, zero_batch, FISHER_KEY)
    assert float(metrics["line_search_accepted"]) == 0.0
    for new, old in zip(jax.tree_util.tree_leaves(new_actor), jax.tree_util.tree_leaves(actor)):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))


def test_full_update_fits_critic(trpo_setup):
    config, network, algo, state, forward, batch, old_logits, policy_step = trpo_setup
    new_state, metrics = fast_jit(algo.update)(state, time_major(batch), jax.random.PRNGKey(1))  # [1, B]
    assert np.isfinite(float(metrics["value_loss"]))
    targets = np.asarray(batch.target, np.float64)
    v_before = np.asarray(forward(state.params, batch.obs)[1], np.float64)
    v_after = np.asarray(forward(new_state.params, batch.obs)[1], np.float64)
    mse_before = np.mean((v_before - targets) ** 2)
    mse_after = np.mean((v_after - targets) ** 2)
    assert mse_after < 0.95 * mse_before
    # the reported value loss is ½ MSE averaged over the fit: between the end points (loosely)
    assert 0.5 * mse_after * 0.5 < float(metrics["value_loss"]) < 0.5 * mse_before * 1.5
    assert float(metrics["line_search_accepted"]) == 1.0


def test_surrogate_and_kl_take_the_full_params(trpo_setup):
    """At the old parameters the ratio is 1: L = E[A] + ent_coef E[H], and KL(π_old ‖ π_old) = 0."""
    config, network, algo, state, forward, batch, old_logits, policy_step = trpo_setup
    lp_old = log_softmax(old_logits)
    entropy = np.mean(-(np.exp(lp_old) * lp_old).sum(-1))
    value = fast_jit(lambda p, b: surrogate(network, p, b.obs, b.action, b.log_prob, b.advantage, 0.1))(state.params, batch)
    assert float(value) == pytest.approx(np.mean(np.asarray(batch.advantage, np.float64)) + 0.1 * entropy, rel=1e-4)
    old = {"logits": jnp.asarray(old_logits, jnp.float32)}
    kl = fast_jit(lambda p, o: mean_kl(network, old, p, o))(state.params, batch.obs)
    assert float(kl) == pytest.approx(0.0, abs=1e-6)


def test_critic_fit_moves_only_the_value_part(trpo_setup):
    config, network, algo, state, forward, batch, old_logits, policy_step = trpo_setup
    (critic, _), metrics = fast_jit(algo.critic_fit)(state.params, state.critic_opt_state, batch, jax.random.PRNGKey(1))
    assert jax.tree_util.tree_structure(critic) == jax.tree_util.tree_structure(state.params["critic"])
    targets = np.asarray(batch.target, np.float64)
    v_before = np.asarray(forward(state.params, batch.obs)[1], np.float64)
    v_after = np.asarray(forward({"actor": state.params["actor"], "critic": critic}, batch.obs)[1], np.float64)
    assert np.mean((v_after - targets) ** 2) < 0.95 * np.mean((v_before - targets) ** 2)
    assert np.isfinite(float(metrics["value_loss"]))
