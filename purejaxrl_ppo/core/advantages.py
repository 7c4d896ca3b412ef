"""Generalised Advantage Estimation (Schulman et al. 2016), time-major."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminations: jax.Array,
    dones: jax.Array,
    gamma: float | jax.Array,
    gae_lambda: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets.

    Args:
      rewards:      ``[T, N]`` float, r_t
      values:       ``[T, N]`` float, V(s_t)
      next_values:  ``[T, N]`` float, V of the true next observation s_{t+1}
                    (the final observation when the episode ended at t)
      terminations: ``[T, N]`` bool, s_{t+1} is terminal: no bootstrap
      dones:        ``[T, N]`` bool, the episode ended at t for any reason
                    (termination or truncation): the λ-trace is cut
      gamma, gae_lambda: scalars (may be traced)

    Returns:
      ``(advantages [T, N], targets [T, N])`` with targets = advantages + values.

    δ_t = r_t + γ (1 - term_t) V(s_{t+1}) - V(s_t);  A_t = δ_t + γ λ (1 - done_t) A_{t+1}.
    A truncated step therefore bootstraps from V(final obs) but does not chain
    into the next episode's advantages.
    """
    not_terminal = 1.0 - terminations.astype(values.dtype)
    not_done = 1.0 - dones.astype(values.dtype)
    deltas = rewards + gamma * not_terminal * next_values - values

    def backward(next_advantage, inputs):
        delta, cont = inputs
        advantage = delta + gamma * gae_lambda * cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, not_done), reverse=True)
    return advantages, advantages + values
