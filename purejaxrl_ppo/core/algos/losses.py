"""Small pure loss pieces that objectives compose (PPO's variants, TRPO's surrogate).

Every function takes per-sample arrays ``[M]`` (or any shape; means are over all
elements) and returns a scalar. Signs follow the convention of a *loss to minimise*
except :func:`importance_weighted_advantage`, the surrogate to maximise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def importance_weighted_advantage(ratio: jax.Array, advantage: jax.Array) -> jax.Array:
    """Per-sample r·A, the integrand of the surrogate L(θ) = E[r A] (Schulman et al. 2015, eq. 14)."""
    return ratio * advantage


def unclipped_surrogate_loss(ratio: jax.Array, advantage: jax.Array) -> jax.Array:
    """-E[r A] (Schulman et al. 2017, eq. 6)."""
    return -importance_weighted_advantage(ratio, advantage).mean()


def clipped_surrogate_loss(ratio: jax.Array, advantage: jax.Array, clip_eps: float | jax.Array) -> jax.Array:
    """-E[min(r A, clip(r, 1-ε, 1+ε) A)] (Schulman et al. 2017, eq. 7)."""
    unclipped = importance_weighted_advantage(ratio, advantage)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage
    return -jnp.minimum(unclipped, clipped).mean()


def kl_penalty_surrogate_loss(
    ratio: jax.Array, advantage: jax.Array, kl: jax.Array, kl_coef: float | jax.Array
) -> jax.Array:
    """-E[r A] + β E[KL[π_old, π]] with per-state ``kl`` (Schulman et al. 2017, eq. 8)."""
    return unclipped_surrogate_loss(ratio, advantage) + kl_coef * kl.mean()


def value_loss(
    value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: float | jax.Array | None = None
) -> jax.Array:
    """½ E[(V - target)²], or with ``clip_eps`` ½ E[max((V - target)², (V_clip - target)²)].

    V_clip = V_old + clip(V - V_old, -ε, ε): the value update clipped around the old value
    (PPO's reference implementations).
    """
    error = jnp.square(value - target)
    if clip_eps is not None:
        clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        error = jnp.maximum(error, jnp.square(clipped - target))
    return 0.5 * error.mean()


def approx_kl(ratio: jax.Array, log_ratio: jax.Array) -> jax.Array:
    """The k3 estimator E[(r - 1) - log r] of KL[π_old, π] (non-negative, low variance)."""
    return ((ratio - 1.0) - log_ratio).mean()


def clip_fraction(ratio: jax.Array, clip_eps: float | jax.Array) -> jax.Array:
    """Fraction of samples whose ratio lies outside [1-ε, 1+ε]."""
    return (jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32).mean()
