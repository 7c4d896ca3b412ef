"""Running observation normalisation and return-based reward scaling.

Both are pure ``init``/``update`` pairs over ``flax.struct`` states, so they
live inside the :class:`~purejaxrl_ppo.core.types.TrainState` pytree (one per seed
under ``vmap``, saved with it) and never touch host memory.

Order within one training update (``train.py``):

1. act with ``normalize(obs_stats, obs)`` using the statistics *before* this rollout;
2. build the update batch from the rollout's raw observations normalised with
   the *same* statistics, so the loss sees exactly what the policy acted on;
3. only then fold the rollout's raw observations into ``obs_stats``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxrl_ppo.core.envs.base import ACTION_MASK, is_structured

#: Normalised observations are clipped to ±OBS_CLIP (as in Brax's PPO and SB3's VecNormalize).
OBS_CLIP = 10.0
#: Scaled rewards are clipped to ±REWARD_CLIP (as SB3's VecNormalize and CleanRL's continuous PPO).
REWARD_CLIP = 10.0
#: The return std is floored at this before dividing: a first rollout whose discounted returns all agree
#: (variance 0) would otherwise scale rewards by 1/sqrt(eps) = 1e4.
REWARD_STD_FLOOR = 1e-2
_EPS = 1e-8


@struct.dataclass
class RunningMeanStd:
    """Mean and variance of every sample seen so far.

    count: float32 scalar, samples seen
    mean:  ``[*shape]`` float32
    var:   ``[*shape]`` float32, population variance (numpy's ``var``, ddof=0)
    """

    count: jax.Array
    mean: jax.Array
    var: jax.Array


def init_stats(shape: tuple[int, ...]) -> RunningMeanStd:
    """No samples yet: mean 0, variance 1 (so normalising is the identity)."""
    return RunningMeanStd(jnp.float32(0.0), jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32))


def update_stats(stats: RunningMeanStd, batch: jax.Array) -> RunningMeanStd:
    """Fold ``batch [..., *shape]`` (all leading axes are samples) into ``stats``.

    Chan, Golub & LeVeque (1979) parallel combination of (count, mean, M2):
    M2 = M2_a + M2_b + δ² n_a n_b / n with δ = mean_b - mean_a. The first batch
    replaces the placeholder variance 1.
    """
    shape = stats.mean.shape
    x = batch.reshape((-1,) + shape).astype(jnp.float32)
    n_b = jnp.float32(x.shape[0])
    mean_b = x.mean(axis=0)
    m2_b = jnp.square(x - mean_b).sum(axis=0)
    n_a = stats.count
    n = n_a + n_b
    delta = mean_b - stats.mean
    mean = stats.mean + delta * (n_b / n)
    m2 = stats.var * n_a + m2_b + jnp.square(delta) * (n_a * n_b / n)
    return RunningMeanStd(n, mean, m2 / n)


def normalize(stats: RunningMeanStd, x: jax.Array, clip: float = OBS_CLIP) -> jax.Array:
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` for ``x [..., *shape]``."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + _EPS), -clip, clip)


@struct.dataclass
class RewardScaler:
    """Per-env discounted return and the running statistics of all such returns.

    discounted_return: ``[N]`` float32, Σ γᵏ r of the current episode so far
    return_stats:      scalar :class:`RunningMeanStd` over every step's discounted return
    """

    discounted_return: jax.Array
    return_stats: RunningMeanStd


def init_reward_scaler(num_envs: int) -> RewardScaler:
    return RewardScaler(jnp.zeros((num_envs,), jnp.float32), init_stats(()))


def scale_rewards(
    scaler: RewardScaler, rewards: jax.Array, dones: jax.Array, gamma: float | jax.Array
) -> tuple[RewardScaler, jax.Array]:
    """Divide a rollout's rewards by the running std of the discounted return.

    rewards, dones: ``[T, N]``. The per-env return G ← γ G + r is reset after
    an episode ends; every G of the rollout updates the statistics, which then
    scale the whole rollout: ``clip(r / max(sqrt(var(G) + eps), REWARD_STD_FLOOR), ±REWARD_CLIP)``
    (the mean is not subtracted, so the sign of rewards is kept; cf. Engstrom et al. 2020,
    "Implementation Matters", reward scaling). Returns ``(scaler', scaled [T, N])``.
    """

    def step(ret, inputs):
        reward, done = inputs
        ret = gamma * ret + reward
        return jnp.where(done, 0.0, ret), ret

    last, returns = jax.lax.scan(step, scaler.discounted_return, (rewards, dones))
    stats = update_stats(scaler.return_stats, returns)
    std = jnp.maximum(jnp.sqrt(stats.var + _EPS), REWARD_STD_FLOOR)
    scaled = jnp.clip(rewards / std, -REWARD_CLIP, REWARD_CLIP)
    return RewardScaler(last, stats), scaled


@struct.dataclass
class NormalizerState:
    """Everything the continuous-control switches carry between updates (per seed).

    obs:     :class:`RunningMeanStd` of raw observations, or a dict of them for structured observations
             (:func:`init_observation_stats`; used iff ``normalize_observations``)
    rewards: :class:`RewardScaler` (used iff ``scale_rewards``)
    """

    obs: Any
    rewards: RewardScaler


def _normalizable(key: str | None, leaf: Any) -> bool:
    """Float32 feature entries are normalised; images (rank 3), integer grids and the action mask never are."""
    return key != ACTION_MASK and np.dtype(leaf.dtype) == np.float32 and len(leaf.shape) != 3


def init_observation_stats(spec: Any) -> Any:
    """Statistics for the observation ``spec`` (a ``jax.ShapeDtypeStruct``, a dict of them, or a flat shape).

    A flat float32 observation gets one :class:`RunningMeanStd` (as always); a float32 rank-3 flat
    observation (MinAtar's grids) too. A dict gets ``{key: RunningMeanStd}`` for its float32 entries of
    rank other than 3 (images, integer grids and the action mask are never normalised); any other single
    array gets ``{}`` (nothing to normalise).
    """
    if isinstance(spec, (tuple, list)):
        return init_stats(tuple(spec))
    if not is_structured(spec):
        return init_stats(tuple(spec.shape)) if np.dtype(spec.dtype) == np.float32 else {}
    return {key: init_stats(tuple(leaf.shape)) for key, leaf in sorted(spec.items()) if _normalizable(key, leaf)}


def normalize_observation(stats: Any, obs: Any) -> Any:
    """``obs`` (leading dims ``[...]``) normalised with :func:`init_observation_stats`' statistics."""
    if isinstance(stats, RunningMeanStd):
        return normalize(stats, obs)
    if not stats:
        return obs
    return {key: normalize(stats[key], value) if key in stats else value for key, value in obs.items()}


def update_observation_stats(stats: Any, obs: Any) -> Any:
    """Fold a batch of raw observations (all leading axes are samples) into the statistics."""
    if isinstance(stats, RunningMeanStd):
        return update_stats(stats, obs)
    return {key: update_stats(value, obs[key]) for key, value in stats.items()}


def init_normalizer(observation: Any, num_envs: int) -> NormalizerState:
    """Fresh statistics for an observation spec (or a flat shape) and ``num_envs`` reward scalers."""
    return NormalizerState(init_observation_stats(observation), init_reward_scaler(num_envs))
