"""PPO's loss: a policy objective (Table 1 of Schulman et al. 2017), the value loss and the entropy bonus.

Each policy objective is a small function composed from :mod:`purejaxrl_ppo.core.algos.losses`;
:data:`POLICY_OBJECTIVES` maps ``PPOConfig.policy_objective`` to it. Total loss as eq. (9):
L = L_π + vf_coef · L_V - ent_coef · H.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.algos import losses
from purejaxrl_ppo.core.algos.base import batch_policy, batch_policy_and_value, batch_value, flat_fields, normalize
from purejaxrl_ppo.core.networks import DistParams, Network, Params
from purejaxrl_ppo.core.networks import entropy as policy_entropy
from purejaxrl_ppo.core.types import UpdateBatch


class PolicyObjective(NamedTuple):
    """A policy loss ``loss(ratio, advantage, kl, clip_eps, kl_coef)``; ``kl`` is per state, or ``None``
    when ``needs_kl`` is False (then the old policy's distribution is never computed)."""

    loss: Callable[..., jax.Array]
    needs_kl: bool


POLICY_OBJECTIVES: dict[str, PolicyObjective] = {
    "clip": PolicyObjective(lambda r, a, kl, eps, beta: losses.clipped_surrogate_loss(r, a, eps), False),
    "kl_fixed": PolicyObjective(lambda r, a, kl, eps, beta: losses.kl_penalty_surrogate_loss(r, a, kl, beta), True),
    "kl_adaptive": PolicyObjective(lambda r, a, kl, eps, beta: losses.kl_penalty_surrogate_loss(r, a, kl, beta), True),
    "unclipped": PolicyObjective(lambda r, a, kl, eps, beta: losses.unclipped_surrogate_loss(r, a), False),
}


def adapt_kl_coef(kl_coef: jax.Array, kl: jax.Array, kl_target: float | jax.Array) -> jax.Array:
    """The adaptive-β rule of Schulman et al. 2017, Section 4.

    With d the measured mean KL[π_old, π] after an update: β ← β/2 if
    d < d_targ/1.5, β ← 2β if d > 1.5·d_targ, otherwise unchanged. Scalars
    (or broadcastable arrays) in, β out.
    """
    kl_coef = jnp.where(kl < kl_target / 1.5, kl_coef / 2.0, kl_coef)
    return jnp.where(kl > kl_target * 1.5, kl_coef * 2.0, kl_coef)


def policy_kl(network: Network, old_dist_params: DistParams, new_dist_params: DistParams) -> jax.Array:
    """Exact ``KL[π_old(·|s), π(·|s)]`` per state, ``[M]``, from the two distributions' parameters."""
    return network.distribution(old_dist_params).kl_divergence(network.distribution(new_dist_params))


def ppo_loss(
    params: Params,
    network: Network,
    batch: UpdateBatch,
    clip_eps: float | jax.Array,
    vf_coef: float | jax.Array,
    ent_coef: float | jax.Array,
    clip_value_loss: bool,
    normalize_advantages: bool,
    objective: str = "clip",
    kl_coef: float | jax.Array = 0.0,
    old_dist_params: DistParams | None = None,
    entropy_noise: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO's total loss on a (mini)batch: ``[M]`` independent transitions (a flattened :class:`UpdateBatch`)
    or whole sequences ``[T, n]`` with their initial carries (a recurrent policy; then M = T·n).

    L = L_π + vf_coef · L_V - ent_coef · H, with r = π(a|s) / π_old(a|s) and the
    policy term L_π chosen by ``objective`` (static, a key of :data:`POLICY_OBJECTIVES`):

    * ``"clip"``:      -E[min(r A, clip(r, 1-ε, 1+ε) A)]            (eq. 7)
    * ``"kl_fixed"``, ``"kl_adaptive"``: -E[r A] + β E[KL[π_old, π]] (eq. 8),
      β = ``kl_coef``, the KL exact per state from ``old_dist_params``
      (``[M, ...]`` flat, required for these two)
    * ``"unclipped"``: -E[r A]                                       (eq. 6)

    L_V is :func:`~purejaxrl_ppo.core.algos.losses.value_loss`, clipped by ε with
    ``clip_value_loss``. Advantages are normalised over the minibatch when
    ``normalize_advantages``. H is exact, or for a tanh-squashed policy the one-sample
    estimate with ``entropy_noise [M, A]`` (:func:`~purejaxrl_ppo.core.networks.base.entropy`).

    Returns ``(loss, aux)``; aux holds ``policy_loss, value_loss, entropy,
    approx_kl`` (the k3 estimator E[(r - 1) - log r]) and ``clip_fraction``.
    """
    if objective not in POLICY_OBJECTIVES:
        raise ValueError(f"unknown policy objective {objective!r}; one of {tuple(POLICY_OBJECTIVES)}")
    policy_objective = POLICY_OBJECTIVES[objective]
    if batch.episode_start is None:  # independent transitions: policy, log-prob, then value (the order of 0.2)
        dist_params, value = batch_policy(network, params, batch), None
    else:  # sequences: one pass through the recurrence for both heads
        dist_params, value = batch_policy_and_value(network, params, batch)
    batch = flat_fields(batch)
    dist = network.distribution(dist_params)
    log_prob = dist.log_prob(batch.action)
    if value is None:
        value = batch_value(network, params, batch)

    advantage = normalize(batch.advantage) if normalize_advantages else batch.advantage
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    kl = None
    if policy_objective.needs_kl:
        if old_dist_params is None:
            raise ValueError(f"objective {objective!r} needs old_dist_params (the old policy's distribution parameters)")
        kl = policy_kl(network, old_dist_params, dist_params)
    policy_loss = policy_objective.loss(ratio, advantage, kl, clip_eps, kl_coef)
    value_loss = losses.value_loss(value, batch.value, batch.target, clip_eps if clip_value_loss else None)

    entropy = policy_entropy(dist, entropy_noise).mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    aux = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": losses.approx_kl(ratio, log_ratio),
        "clip_fraction": losses.clip_fraction(ratio, clip_eps),
    }
    return loss, aux


