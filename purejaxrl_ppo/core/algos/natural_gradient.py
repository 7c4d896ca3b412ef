"""Natural-gradient machinery on pytrees: conjugate gradient, Fisher-vector products, the trust-region step.

The Fisher is never materialised: F v = Jᵀ M J v (the Gauss–Newton form), with
J the Jacobian of the distribution parameters w.r.t. θ (a ``jax.linearize``
JVP and a ``jax.vjp``) and M the per-sample Fisher of the action distribution
in its own parameters (the Hessian of the KL, applied by a small JVP-of-grad).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.algos.base import policy_of
from purejaxrl_ppo.core.networks import DistParams, Network, Params

PyTree = Any


# ----------------------------------------------------------------------------- linear algebra on pytrees
def tree_vdot(a: PyTree, b: PyTree) -> jax.Array:
    """Sum of elementwise products over all leaves."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def tree_axpy(alpha: jax.Array, x: PyTree, y: PyTree) -> PyTree:
    """``alpha * x + y`` leafwise."""
    return jax.tree_util.tree_map(lambda a, b: alpha * a + b, x, y)


def conjugate_gradient(
    matvec: Callable[[PyTree], PyTree], b: PyTree, num_iters: int, tol: float = 1e-10
) -> PyTree:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A``.

    Args:
      matvec: ``v -> A v`` on pytrees (or flat vectors) shaped like ``b``.
      b: right-hand side, any pytree of float arrays.
      num_iters: maximum iterations (static); exact after dim(b) in exact arithmetic.
      tol: stop once the squared residual ``‖b - A x‖²`` falls below this.

    Returns ``x`` shaped like ``b``, starting from ``x₀ = 0``.
    """
    x0 = jax.tree_util.tree_map(jnp.zeros_like, b)
    r0 = b
    init = (jnp.int32(0), x0, r0, r0, tree_vdot(r0, r0))

    def cond(state):
        i, _, _, _, rr = state
        return jnp.logical_and(i < num_iters, rr > tol)

    def body(state):
        i, x, r, p, rr = state
        ap = matvec(p)
        alpha = rr / tree_vdot(p, ap)
        x = tree_axpy(alpha, p, x)
        r = tree_axpy(-alpha, ap, r)
        rr_new = tree_vdot(r, r)
        p = tree_axpy(rr_new / rr, p, r)
        return i + 1, x, r, p, rr_new

    _, x, _, _, _ = jax.lax.while_loop(cond, body, init)
    return x


# ----------------------------------------------------------------------------- Fisher-vector products
def gauss_newton_fvp(
    policy: Callable[[Params], DistParams],
    theta: Params,
    kl_sum: Callable[[DistParams, DistParams], jax.Array],
    damping: float | jax.Array,
    num_samples: int | jax.Array | None = None,
) -> Callable[[Params], Params]:
    """``v -> (F + damping·I) v`` for any policy ``theta -> distribution parameters``.

    ``kl_sum(old, new)``: the summed KL(π_old ‖ π_new) over the samples (a masked sum for
    padded token sequences); F = (1/num_samples) Jᵀ ∇²kl_sum J at ``theta``, where
    ``num_samples`` (default: the leading size of the distribution parameters) is what the
    sum is averaged over. The forward pass is linearised once, so each product costs one
    JVP and one VJP of ``policy``.
    """
    dist_params, jvp_fn = jax.linearize(policy, theta)
    _, vjp_fn = jax.vjp(policy, theta)
    dist_params = jax.lax.stop_gradient(dist_params)
    if num_samples is None:
        num_samples = jax.tree_util.tree_leaves(dist_params)[0].shape[0]

    def distribution_fisher(u: DistParams) -> DistParams:
        # Hessian of KL(π_old ‖ π_new) w.r.t. the new distribution parameters, at new = old.
        return jax.jvp(jax.grad(lambda new: kl_sum(dist_params, new)), (dist_params,), (u,))[1]

    def fvp(v: Params) -> Params:
        mjv = distribution_fisher(jvp_fn(v))
        (jtmjv,) = vjp_fn(jax.tree_util.tree_map(lambda t: t / num_samples, mjv))
        return tree_axpy(damping, v, jtmjv)

    return fvp


def make_fisher_vector_product(
    network: Network, params: Params, obs: Any, damping: float | jax.Array
) -> Callable[[Params], Params]:
    """``v -> (F + damping·I) v`` for the mean Fisher of π_θ over the M states of ``obs``.

    ``obs``: observations ``[M, *obs_shape]`` of independent transitions, or a time-major
    sequence :class:`~purejaxrl_ppo.core.types.UpdateBatch` ``[T, n]`` (a recurrent policy,
    M = T·n: J is then the Jacobian through the unrolled recurrence).
    θ is the policy part of ``params`` (``network.policy_params(params)``) and ``v`` is
    shaped like it. F = (1/M) Σᵢ Jᵢᵀ Mᵢ Jᵢ at θ (:func:`gauss_newton_fvp`).
    """
    def policy(theta: Params) -> DistParams:
        return policy_of(network, network.with_policy_params(params, theta), obs)

    def total_kl(old: DistParams, new: DistParams) -> jax.Array:
        return network.distribution(old).kl_divergence(network.distribution(new)).sum()

    return gauss_newton_fvp(policy, network.policy_params(params), total_kl, damping)


# ----------------------------------------------------------------------------- the trust-region step
class TrustRegionStep(NamedTuple):
    """The outcome of :func:`trust_region_step`: θ' (θ itself when no trial was accepted) and scalars."""

    theta: Params
    kl: jax.Array            # KL of the accepted trial (0 when none was)
    improvement: jax.Array   # surrogate gain of the accepted trial (0 when none was)
    accepted: jax.Array      # bool
    trials: jax.Array        # int32, line-search trials evaluated

    def metrics(self) -> dict[str, jax.Array]:
        """The step's scalar metrics (float32): ``kl``, ``line_search_accepted``, ``line_search_trials``,
        ``surrogate_improvement``."""
        return {
            "kl": self.kl,
            "line_search_accepted": self.accepted.astype(jnp.float32),
            "line_search_trials": self.trials.astype(jnp.float32),
            "surrogate_improvement": self.improvement,
        }


def trust_region_step(
    objective: Callable[[Params], jax.Array],
    kl_from_old: Callable[[Params], jax.Array],
    theta: Params,
    old_objective: jax.Array,
    gradient: Params,
    fvp: Callable[[Params], Params],
    max_kl: float | jax.Array,
    cg_iters: int,
    line_search_steps: int,
    backtrack_coef: float | jax.Array,
) -> TrustRegionStep:
    """TRPO's policy step from the surrogate's value and gradient at θ (Schulman et al. 2015, App. C).

    Solves F s = g by :func:`conjugate_gradient`, scales s to the trust region's boundary,
    β = √(2δ / sᵀF s) with δ = ``max_kl``, and backtracks θ + c^k β s (c = ``backtrack_coef``,
    k < ``line_search_steps``) until ``kl_from_old`` ≤ δ and ``objective`` improves on
    ``old_objective`` (both finite). Works on any pytree θ: a control policy's parameters or a
    language model's.
    """
    direction = conjugate_gradient(fvp, gradient, cg_iters)
    # Appendix C: largest step along s with ½ sᵀF s β² = δ, i.e. β = √(2δ / sᵀF s).
    shs = tree_vdot(direction, fvp(direction))
    full_step_scale = jnp.sqrt(2.0 * max_kl / jnp.maximum(shs, 1e-12))

    def candidate(fraction: jax.Array) -> tuple[Params, jax.Array, jax.Array]:
        new_theta = tree_axpy(fraction * full_step_scale, direction, theta)
        return new_theta, kl_from_old(new_theta), objective(new_theta) - old_objective

    def is_acceptable(kl: jax.Array, improvement: jax.Array) -> jax.Array:
        finite = jnp.logical_and(jnp.isfinite(kl), jnp.isfinite(improvement))
        return jnp.logical_and(finite, jnp.logical_and(kl <= max_kl, improvement > 0.0))

    def cond(state):
        trial, accepted, *_ = state
        return jnp.logical_and(trial < line_search_steps, jnp.logical_not(accepted))

    def body(state):
        trial, _, _, _, _ = state
        new_theta, kl, improvement = candidate(backtrack_coef**trial)
        return trial + 1, is_acceptable(kl, improvement), new_theta, kl, improvement

    zero = jnp.zeros((), jnp.float32)
    init = (jnp.int32(0), jnp.bool_(False), theta, zero, zero)
    trials, accepted, new_theta, kl, improvement = jax.lax.while_loop(cond, body, init)
    new_theta = jax.tree_util.tree_map(lambda n, o: jnp.where(accepted, n, o), new_theta, theta)
    return TrustRegionStep(new_theta, jnp.where(accepted, kl, 0.0), jnp.where(accepted, improvement, 0.0),
                           accepted, trials)
