"""Natural-gradient machinery on pytrees: conjugate gradient and Fisher-vector products.

The Fisher is never materialised: F v = Jᵀ M J v (the Gauss–Newton form), with
J the Jacobian of the distribution parameters w.r.t. θ (a ``jax.linearize``
JVP and a ``jax.vjp``) and M the per-sample Fisher of the action distribution
in its own parameters (the Hessian of the KL, applied by a small JVP-of-grad).
"""

from __future__ import annotations

from typing import Any, Callable

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
def make_fisher_vector_product(
    network: Network, params: Params, obs: Any, damping: float | jax.Array
) -> Callable[[Params], Params]:
    """``v -> (F + damping·I) v`` for the mean Fisher of π_θ over the M states of ``obs``.

    ``obs``: observations ``[M, *obs_shape]`` of independent transitions, or a time-major
    sequence :class:`~purejaxrl_ppo.core.types.UpdateBatch` ``[T, n]`` (a recurrent policy,
    M = T·n: J is then the Jacobian through the unrolled recurrence).
    θ is the policy part of ``params`` (``network.policy_params(params)``) and ``v`` is
    shaped like it. F = (1/M) Σᵢ Jᵢᵀ Mᵢ Jᵢ at θ. The forward pass is linearised once, so
    each product costs one JVP and one VJP of the policy.
    """
    def policy(theta: Params) -> DistParams:
        return policy_of(network, network.with_policy_params(params, theta), obs)

    theta = network.policy_params(params)
    dist_params, jvp_fn = jax.linearize(policy, theta)
    _, vjp_fn = jax.vjp(policy, theta)
    dist_params = jax.lax.stop_gradient(dist_params)
    num_samples = jax.tree_util.tree_leaves(dist_params)[0].shape[0]

    def total_kl(new: DistParams) -> jax.Array:
        return network.distribution(dist_params).kl_divergence(network.distribution(new)).sum()

    def distribution_fisher(u: DistParams) -> DistParams:
        # Hessian of KL(π_old ‖ π_new) w.r.t. the new distribution parameters, at new = old.
        return jax.jvp(jax.grad(total_kl), (dist_params,), (u,))[1]

    def fvp(v: Params) -> Params:
        mjv = distribution_fisher(jvp_fn(v))
        (jtmjv,) = vjp_fn(jax.tree_util.tree_map(lambda t: t / num_samples, mjv))
        return tree_axpy(damping, v, jtmjv)

    return fvp
