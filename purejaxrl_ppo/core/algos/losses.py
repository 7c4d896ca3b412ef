"""Small pure loss pieces that objectives compose (PPO's variants, TRPO's surrogate).

Every function takes per-sample arrays ``[M]`` (or any shape; means are over all
elements) and returns a scalar. Signs follow the convention of a *loss to minimise*
except :func:`importance_weighted_advantage`, the surrogate to maximise.

The reducing functions take an optional ``mask`` (same shape, 1 = the sample counts, 0 = it
does not): the mean is then over the masked-in samples only (:func:`masked_mean`), which is
how token sequences with padding after their end (RLHF) use the same pieces as control tasks.
Without a mask the plain ``.mean()`` runs, so control-task results are unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``x.mean()``, or with ``mask`` (0/1, shaped like ``x``) Σ mask·x / max(Σ mask, 1)."""
    if mask is None:
        return x.mean()
    mask = mask.astype(x.dtype)
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def importance_weighted_advantage(ratio: jax.Array, advantage: jax.Array) -> jax.Array:
    """Per-sample r·A, the integrand of the surrogate L(θ) = E[r A] (Schulman et al. 2015, eq. 14)."""
    return ratio * advantage


def unclipped_surrogate_loss(ratio: jax.Array, advantage: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """-E[r A] (Schulman et al. 2017, eq. 6)."""
    return -masked_mean(importance_weighted_advantage(ratio, advantage), mask)


def clipped_surrogate_loss(
    ratio: jax.Array, advantage: jax.Array, clip_eps: float | jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """-E[min(r A, clip(r, 1-ε, 1+ε) A)] (Schulman et al. 2017, eq. 7)."""
    unclipped = importance_weighted_advantage(ratio, advantage)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage
    return -masked_mean(jnp.minimum(unclipped, clipped), mask)


def kl_penalty_surrogate_loss(
    ratio: jax.Array, advantage: jax.Array, kl: jax.Array, kl_coef: float | jax.Array
) -> jax.Array:
    """-E[r A] + β E[KL[π_old, π]] with per-state ``kl`` (Schulman et al. 2017, eq. 8)."""
    return unclipped_surrogate_loss(ratio, advantage) + kl_coef * kl.mean()


def value_loss(
    value: jax.Array,
    old_value: jax.Array,
    target: jax.Array,
    clip_eps: float | jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """½ E[(V - target)²], or with ``clip_eps`` ½ E[max((V - target)², (V_clip - target)²)].

    V_clip = V_old + clip(V - V_old, -ε, ε): the value update clipped around the old value
    (PPO's reference implementations).
    """
    error = jnp.square(value - target)
    if clip_eps is not None:
        clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        error = jnp.maximum(error, jnp.square(clipped - target))
    return 0.5 * masked_mean(error, mask)


def approx_kl(ratio: jax.Array, log_ratio: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The k3 estimator E[(r - 1) - log r] of KL[π_old, π] (non-negative, low variance)."""
    return masked_mean((ratio - 1.0) - log_ratio, mask)


def clip_fraction(ratio: jax.Array, clip_eps: float | jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Fraction of samples whose ratio lies outside [1-ε, 1+ε]."""
    return masked_mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32), mask)
