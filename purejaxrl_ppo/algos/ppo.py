"""The PPO update: policy surrogate, value loss, entropy bonus, minibatch epochs.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms": the clipped
surrogate (eq. 7) by default, or the paper's alternatives compared in its
Table 1 (``PPOConfig.policy_objective``): the KL-penalised surrogate (eq. 8)
with a fixed or adaptive coefficient β (Section 4), and the unclipped
surrogate (eq. 6). Total loss as eq. (9).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purejaxrl_ppo.algos.common import UpdateBatch, minibatch_epochs, normalize
from purejaxrl_ppo.config import PPOConfig
from purejaxrl_ppo.networks import ActorCritic, DistParams, Params

#: Objectives whose loss needs the old policy's distribution parameters.
KL_OBJECTIVES = ("kl_adaptive", "kl_fixed")


@struct.dataclass
class PPOState:
    """Actor and critic parameters, their joint Adam state, and the KL coefficient.

    kl_coef: float32 scalar β of the KL-penalty objectives (constant for
    ``kl_fixed``, adapted after each update for ``kl_adaptive``, unused otherwise).
    """

    params: Params
    opt_state: optax.OptState
    kl_coef: jax.Array


def adapt_kl_coef(kl_coef: jax.Array, kl: jax.Array, kl_target: float | jax.Array) -> jax.Array:
    """The adaptive-β rule of Schulman et al. 2017, Section 4.

    With d the measured mean KL[π_old, π] after an update: β ← β/2 if
    d < d_targ/1.5, β ← 2β if d > 1.5·d_targ, otherwise unchanged. Scalars
    (or broadcastable arrays) in, β out.
    """
    kl_coef = jnp.where(kl < kl_target / 1.5, kl_coef / 2.0, kl_coef)
    return jnp.where(kl > kl_target * 1.5, kl_coef * 2.0, kl_coef)


def policy_kl(network: ActorCritic, old_dist_params: DistParams, new_dist_params: DistParams) -> jax.Array:
    """Exact KL[π_old(·|s), π(·|s)] per state, ``[M]``, from the two distributions' parameters."""
    return network.distribution(old_dist_params).kl_divergence(network.distribution(new_dist_params))


def ppo_loss(
    params: Params,
    network: ActorCritic,
    batch: UpdateBatch,
    clip_eps: float | jax.Array,
    vf_coef: float | jax.Array,
    ent_coef: float | jax.Array,
    clip_value_loss: bool,
    normalize_advantages: bool,
    objective: str = "clip",
    kl_coef: float | jax.Array = 0.0,
    old_dist_params: DistParams | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO's total loss on a (mini)batch of ``[M]`` transitions.

    L = L_π + vf_coef · L_V - ent_coef · H, with r = π(a|s) / π_old(a|s) and the
    policy term L_π chosen by ``objective`` (static):

    * ``"clip"``:      -E[min(r A, clip(r, 1-ε, 1+ε) A)]            (eq. 7)
    * ``"kl_fixed"``, ``"kl_adaptive"``: -E[r A] + β E[KL[π_old, π]] (eq. 8),
      β = ``kl_coef``, the KL exact per state from ``old_dist_params``
      (``[M, ...]``, required for these two)
    * ``"unclipped"``: -E[r A]                                       (eq. 6)

    L_V = ½ E[(V - target)²] or, with ``clip_value_loss``,
    ½ E[max((V - target)², (V_clip - target)²)] where
    V_clip = V_old + clip(V - V_old, -ε, ε). Advantages are normalised over the
    minibatch when ``normalize_advantages``.

    Returns ``(loss, aux)``; aux holds ``policy_loss, value_loss, entropy,
    approx_kl`` (the k3 estimator E[(r - 1) - log r]) and ``clip_fraction``.
    """
    dist_params = network.policy(params["actor"], batch.obs)
    dist = network.distribution(dist_params)
    log_prob = dist.log_prob(batch.action)
    value = network.value(params["critic"], batch.obs)

    advantage = normalize(batch.advantage) if normalize_advantages else batch.advantage
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantage
    if objective == "clip":
        clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage
        policy_loss = -jnp.minimum(unclipped, clipped).mean()
    elif objective in KL_OBJECTIVES:
        if old_dist_params is None:
            raise ValueError(f"objective {objective!r} needs old_dist_params (the old policy's distribution parameters)")
        policy_loss = -unclipped.mean() + kl_coef * policy_kl(network, old_dist_params, dist_params).mean()
    elif objective == "unclipped":
        policy_loss = -unclipped.mean()
    else:
        raise ValueError(f"unknown policy objective {objective!r}")

    value_error = jnp.square(value - batch.target)
    if clip_value_loss:
        value_clipped = batch.value + jnp.clip(value - batch.value, -clip_eps, clip_eps)
        value_error = jnp.maximum(value_error, jnp.square(value_clipped - batch.target))
    value_loss = 0.5 * value_error.mean()

    entropy = dist.entropy().mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    aux = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
        "clip_fraction": (jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32).mean(),
    }
    return loss, aux


@dataclasses.dataclass(frozen=True)
class PPO:
    """PPO as a pluggable update: ``init(key) -> PPOState``, ``update(state, batch, key)``."""

    config: PPOConfig
    network: ActorCritic

    def learning_rate(self, count: jax.Array) -> jax.Array:
        """Adam step size after ``count`` optimiser steps (linear annealing to 0 if enabled)."""
        cfg = self.config
        if not cfg.anneal_lr:
            return jnp.asarray(cfg.learning_rate, jnp.float32)
        steps_per_update = cfg.update_epochs * cfg.num_minibatches
        frac = 1.0 - (count // steps_per_update) / cfg.num_updates
        return cfg.learning_rate * frac

    def optimizer(self) -> optax.GradientTransformation:
        # optax.flatten runs Adam on one concatenated vector instead of a dozen small
        # leaves: fewer kernels per step (faster on CPU, shorter compile), same maths.
        inner = optax.chain(
            optax.clip_by_global_norm(self.config.max_grad_norm),
            optax.adam(self.learning_rate, eps=1e-5),
        )
        return optax.flatten(inner)

    def init(self, key: jax.Array) -> PPOState:
        params = self.network.init(key)
        kl_coef = jnp.asarray(self.config.kl_coef, jnp.float32)
        return PPOState(params, self.optimizer().init(params), kl_coef)

    def update(self, state: PPOState, batch: UpdateBatch, key: jax.Array) -> tuple[PPOState, dict[str, jax.Array]]:
        """``update_epochs`` passes of ``num_minibatches`` Adam steps on the PPO loss.

        For the KL objectives the old policy's distribution parameters are
        computed once on the whole ``[B]`` batch (the actor has not moved since
        the rollout) and shuffled with it. ``kl_adaptive`` then measures
        d = E_s[KL[π_old(·|s), π(·|s)]] exactly over the batch with the updated
        actor and adapts β (:func:`adapt_kl_coef`); metrics add ``kl`` (that d)
        and ``kl_coef`` (the β this update's loss used).
        """
        cfg = self.config
        optimizer = self.optimizer()
        grad_fn = jax.grad(ppo_loss, has_aux=True)
        uses_kl = cfg.policy_objective in KL_OBJECTIVES
        old_dist_params = jax.lax.stop_gradient(self.network.policy(state.params["actor"], batch.obs)) if uses_kl else None

        def minibatch_step(state: PPOState, data: tuple[UpdateBatch, DistParams | None]):
            minibatch, old_dist_minibatch = data
            grads, aux = grad_fn(
                state.params, self.network, minibatch, cfg.clip_eps, cfg.vf_coef, cfg.ent_coef,
                cfg.clip_value_loss, cfg.normalize_advantages, cfg.policy_objective, state.kl_coef, old_dist_minibatch,
            )
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state), aux

        data = (batch, old_dist_params)
        new_state, metrics = minibatch_epochs(minibatch_step, state, data, key, cfg.update_epochs, cfg.num_minibatches)
        if not uses_kl:
            return new_state, metrics
        new_dist_params = self.network.policy(new_state.params["actor"], batch.obs)
        kl = policy_kl(self.network, old_dist_params, new_dist_params).mean()
        if cfg.policy_objective == "kl_adaptive":
            new_state = new_state.replace(kl_coef=adapt_kl_coef(state.kl_coef, kl, cfg.kl_target))
        return new_state, {**metrics, "kl": kl, "kl_coef": state.kl_coef}
