"""The TRPO update: natural-gradient step under a KL trust region.

Schulman et al. 2015, "Trust Region Policy Optimization", Section 6 and
Appendix C: maximise the importance-weighted surrogate L(θ) subject to
mean KL(π_old ‖ π_θ) ≤ δ by (1) solving F s = g with conjugate gradient, where
F is the Fisher information and g = ∇L, (2) scaling s to the KL boundary,
β = √(2δ / sᵀF s), and (3) backtracking until the KL bound holds and the
surrogate improves. The critic is fitted separately with Adam.

The Fisher is never materialised: F v = Jᵀ M J v (the Gauss–Newton form), with
J the Jacobian of the distribution parameters w.r.t. θ (a ``jax.linearize``
JVP and a ``jax.vjp``) and M the per-sample Fisher of the action distribution
in its own parameters (the Hessian of the KL, applied by a small JVP-of-grad).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purejaxrl_ppo.algos.common import UpdateBatch, minibatch_epochs, normalize
from purejaxrl_ppo.config import TRPOConfig
from purejaxrl_ppo.networks import ActorCritic, DistParams, Params

PyTree = Any


# ----------------------------------------------------------------------------- linear algebra on pytrees
def _vdot(a: PyTree, b: PyTree) -> jax.Array:
    """Sum of elementwise products over all leaves."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def _axpy(alpha: jax.Array, x: PyTree, y: PyTree) -> PyTree:
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
    init = (jnp.int32(0), x0, r0, r0, _vdot(r0, r0))

    def cond(state):
        i, _, _, _, rr = state
        return jnp.logical_and(i < num_iters, rr > tol)

    def body(state):
        i, x, r, p, rr = state
        ap = matvec(p)
        alpha = rr / _vdot(p, ap)
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, ap, r)
        rr_new = _vdot(r, r)
        p = _axpy(rr_new / rr, p, r)
        return i + 1, x, r, p, rr_new

    _, x, _, _, _ = jax.lax.while_loop(cond, body, init)
    return x


# ----------------------------------------------------------------------------- Fisher-vector products
def make_fisher_vector_product(
    network: ActorCritic, actor_params: Params, obs: jax.Array, damping: float | jax.Array
) -> Callable[[Params], Params]:
    """``v -> (F + damping·I) v`` for the mean Fisher of π_θ over ``obs [M, *obs_shape]``.

    F = (1/M) Σᵢ Jᵢᵀ Mᵢ Jᵢ at θ = ``actor_params``. The forward pass is
    linearised once, so each product costs one JVP and one VJP of the actor.
    """
    policy = lambda p: network.policy(p, obs)  # noqa: E731
    dist_params, jvp_fn = jax.linearize(policy, actor_params)
    _, vjp_fn = jax.vjp(policy, actor_params)
    dist_params = jax.lax.stop_gradient(dist_params)
    num_samples = obs.shape[0]

    def total_kl(new: DistParams) -> jax.Array:
        return network.distribution(dist_params).kl_divergence(network.distribution(new)).sum()

    def distribution_fisher(u: DistParams) -> DistParams:
        # Hessian of KL(π_old ‖ π_new) w.r.t. the new distribution parameters, at new = old.
        return jax.jvp(jax.grad(total_kl), (dist_params,), (u,))[1]

    def fvp(v: Params) -> Params:
        mjv = distribution_fisher(jvp_fn(v))
        (jtmjv,) = vjp_fn(jax.tree_util.tree_map(lambda t: t / num_samples, mjv))
        return _axpy(damping, v, jtmjv)

    return fvp


# ----------------------------------------------------------------------------- surrogate and KL
def surrogate(
    network: ActorCritic,
    actor_params: Params,
    obs: jax.Array,
    action: jax.Array,
    old_log_prob: jax.Array,
    advantage: jax.Array,
    ent_coef: float | jax.Array,
) -> jax.Array:
    """L(θ) = E[π_θ(a|s)/π_old(a|s) · A] + ent_coef · E[H(π_θ(·|s))] over ``[B]`` samples."""
    dist = network.distribution(network.policy(actor_params, obs))
    ratio = jnp.exp(dist.log_prob(action) - old_log_prob)
    return (ratio * advantage).mean() + ent_coef * dist.entropy().mean()


def mean_kl(network: ActorCritic, old_dist_params: DistParams, actor_params: Params, obs: jax.Array) -> jax.Array:
    """E_s[KL(π_old(·|s) ‖ π_θ(·|s))] over ``obs [B, *obs_shape]``."""
    new_dist_params = network.policy(actor_params, obs)
    return network.distribution(old_dist_params).kl_divergence(network.distribution(new_dist_params)).mean()


# ----------------------------------------------------------------------------- the update
@struct.dataclass
class TRPOState:
    """Actor and critic parameters and the critic's Adam state."""

    params: Params
    critic_opt_state: optax.OptState


@dataclasses.dataclass(frozen=True)
class TRPO:
    """TRPO as a pluggable update: ``init(key) -> TRPOState``, ``update(state, batch, key)``."""

    config: TRPOConfig
    network: ActorCritic

    def critic_optimizer(self) -> optax.GradientTransformation:
        return optax.flatten(optax.adam(self.config.critic_learning_rate, eps=1e-5))  # one vector: fewer kernels

    def init(self, key: jax.Array) -> TRPOState:
        params = self.network.init(key)
        return TRPOState(params, self.critic_optimizer().init(params["critic"]))

    def policy_step(self, actor_params: Params, batch: UpdateBatch) -> tuple[Params, dict[str, jax.Array]]:
        """One natural-gradient step with backtracking line search on ``[B]`` samples."""
        cfg, network = self.config, self.network
        old_dist_params = jax.lax.stop_gradient(network.policy(actor_params, batch.obs))
        old_dist = network.distribution(old_dist_params)
        old_log_prob = old_dist.log_prob(batch.action)
        advantage = normalize(batch.advantage) if cfg.normalize_advantages else batch.advantage

        def objective(params: Params) -> jax.Array:
            return surrogate(network, params, batch.obs, batch.action, old_log_prob, advantage, cfg.ent_coef)

        old_objective, gradient = jax.value_and_grad(objective)(actor_params)
        fisher_obs = batch.obs[:: cfg.fisher_subsample]
        fvp = make_fisher_vector_product(network, actor_params, fisher_obs, cfg.cg_damping)
        direction = conjugate_gradient(fvp, gradient, cfg.cg_iters)
        # Appendix C: largest step along s with ½ sᵀF s β² = δ, i.e. β = √(2δ / sᵀF s).
        shs = _vdot(direction, fvp(direction))
        full_step_scale = jnp.sqrt(2.0 * cfg.max_kl / jnp.maximum(shs, 1e-12))

        def candidate(fraction: jax.Array) -> tuple[Params, jax.Array, jax.Array]:
            params = _axpy(fraction * full_step_scale, direction, actor_params)
            kl = mean_kl(network, old_dist_params, params, batch.obs)
            return params, kl, objective(params) - old_objective

        def is_acceptable(kl: jax.Array, improvement: jax.Array) -> jax.Array:
            finite = jnp.logical_and(jnp.isfinite(kl), jnp.isfinite(improvement))
            return jnp.logical_and(finite, jnp.logical_and(kl <= cfg.max_kl, improvement > 0.0))

        def cond(state):
            trial, accepted, *_ = state
            return jnp.logical_and(trial < cfg.line_search_steps, jnp.logical_not(accepted))

        def body(state):
            trial, _, _, _, _ = state
            params, kl, improvement = candidate(cfg.backtrack_coef**trial)
            return trial + 1, is_acceptable(kl, improvement), params, kl, improvement

        zero = jnp.zeros((), jnp.float32)
        init = (jnp.int32(0), jnp.bool_(False), actor_params, zero, zero)
        trials, accepted, new_params, kl, improvement = jax.lax.while_loop(cond, body, init)
        new_params = jax.tree_util.tree_map(lambda n, o: jnp.where(accepted, n, o), new_params, actor_params)
        metrics = {
            "kl": jnp.where(accepted, kl, 0.0),
            "line_search_accepted": accepted.astype(jnp.float32),
            "line_search_trials": trials.astype(jnp.float32),
            "surrogate_improvement": jnp.where(accepted, improvement, 0.0),
            "entropy": old_dist.entropy().mean(),
        }
        return new_params, metrics

    def critic_fit(
        self, critic_params: Params, opt_state: optax.OptState, batch: UpdateBatch, key: jax.Array
    ) -> tuple[tuple[Params, optax.OptState], dict[str, jax.Array]]:
        """``critic_epochs`` × ``critic_minibatches`` Adam steps on ½ E[(V - target)²]."""
        cfg, network = self.config, self.network
        optimizer = self.critic_optimizer()

        def loss(params: Params, obs: jax.Array, target: jax.Array) -> jax.Array:
            return 0.5 * jnp.square(network.value(params, obs) - target).mean()

        def step(carry, minibatch):
            params, opt_state = carry
            value_loss, grads = jax.value_and_grad(loss)(params, minibatch[0], minibatch[1])
            updates, opt_state = optimizer.update(jax.tree_util.tree_map(lambda g: cfg.vf_coef * g, grads), opt_state)
            return (optax.apply_updates(params, updates), opt_state), {"value_loss": value_loss}

        data = (batch.obs, batch.target)
        return minibatch_epochs(step, (critic_params, opt_state), data, key, cfg.critic_epochs, cfg.critic_minibatches)

    def update(self, state: TRPOState, batch: UpdateBatch, key: jax.Array) -> tuple[TRPOState, dict[str, jax.Array]]:
        """Natural-gradient policy step, then the critic fit, on the same rollout."""
        actor_params, policy_metrics = self.policy_step(state.params["actor"], batch)
        (critic_params, opt_state), critic_metrics = self.critic_fit(
            state.params["critic"], state.critic_opt_state, batch, key
        )
        params = {"actor": actor_params, "critic": critic_params}
        return TRPOState(params, opt_state), {**policy_metrics, **critic_metrics}
