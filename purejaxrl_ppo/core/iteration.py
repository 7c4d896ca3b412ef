"""The default training iteration: rollout → advantages → the algorithm's update.

:meth:`Algorithm.iteration <purejaxrl_ppo.core.algos.base.Algorithm.iteration>` calls
:func:`rollout_iteration` unless an algorithm overrides it (PPO for language models
generates, scores and updates in its own iteration). Order within one iteration:

1. act ``num_steps`` steps in ``num_envs`` envs with the observation statistics from
   *before* this rollout (:func:`~purejaxrl_ppo.core.rollout.collect`);
2. scale rewards (``scale_rewards``), normalise the rollout's observations with the same
   statistics, bootstrap and compute GAE into a time-major
   :class:`~purejaxrl_ppo.core.types.UpdateBatch`;
3. ``algo.update(algo_state, batch, key)``;
4. only then fold the rollout's raw observations into the statistics.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.advantages import gae
from purejaxrl_ppo.core.envs.base import Env
from purejaxrl_ppo.core.networks import Network, Params
from purejaxrl_ppo.core.normalization import NormalizerState, scale_rewards, update_observation_stats
from purejaxrl_ppo.core.rollout import bootstrap_values, collect, policy_input
from purejaxrl_ppo.core.types import TrainState, Transition, UpdateBatch, flatten_time_major


def observation_stats(config: Any, normalizer: NormalizerState) -> Any | None:
    """The statistics the policy normalises with, or ``None`` when normalisation is off."""
    return normalizer.obs if config.normalize_observations else None


def episode_metrics(info: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Mean return and length of the episodes that ended in this rollout (NaN if none)."""
    done = info["episode_done"].astype(jnp.float32)
    count = done.sum()

    def mean_over_ended(x):
        return jnp.where(count > 0, (x * done).sum() / jnp.maximum(count, 1.0), jnp.nan)

    return {
        "episode_return": mean_over_ended(info["episode_return"]),
        "episode_length": mean_over_ended(info["episode_length"].astype(jnp.float32)),
        "episodes_ended": count,
    }


def explained_variance(values: jax.Array, targets: jax.Array) -> jax.Array:
    """1 - Var[target - V] / Var[target] over ``[B]`` (NaN when the targets have no variance)."""
    var_targets = targets.var()
    return jnp.where(var_targets > 0, 1.0 - (targets - values).var() / jnp.where(var_targets > 0, var_targets, 1.0), jnp.nan)


def make_update_batch(
    config: Any,
    network: Network,
    params: Params,
    traj: Transition,
    obs_stats: Any | None = None,
    initial_carry: Any = (),
) -> UpdateBatch:
    """GAE on a ``[T, N]`` rollout: the algorithm's time-major :class:`UpdateBatch`.

    ``obs`` and ``final_obs`` are normalised with ``obs_stats`` (the statistics
    the rollout acted with), so the batch holds exactly the policy's inputs.
    ``initial_carry``: the network's carry ``[N]`` at the start of the rollout.
    """
    traj = traj._replace(obs=policy_input(traj.obs, obs_stats), final_obs=policy_input(traj.final_obs, obs_stats))
    next_values = bootstrap_values(network, params, traj, initial_carry)
    advantages, targets = gae(
        traj.reward, traj.value, next_values, traj.terminated, traj.done, config.gamma, config.gae_lambda
    )
    return UpdateBatch(traj.obs, traj.action, traj.log_prob, traj.value, advantages, targets,
                       traj.episode_start, initial_carry, {})


def rollout_iteration(algo: Any, env: Env, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
    """Rollout -> GAE -> ``algo.update``; returns ``(state, scalar metrics)``."""
    config, network = algo.config, algo.network
    key, rollout_key, update_key = jax.random.split(state.key, 3)
    params = state.algo_state.params
    normalizer = state.normalizer
    obs_stats = observation_stats(config, normalizer)
    initial_carry = state.runner.carry
    runner, traj = collect(env, network, params, state.runner, rollout_key, config.num_steps, obs_stats)
    if config.scale_rewards:
        reward_scaler, scaled = scale_rewards(normalizer.rewards, traj.reward, traj.done, config.gamma)
        normalizer = normalizer.replace(rewards=reward_scaler)
        traj = traj._replace(reward=scaled)
    batch = make_update_batch(config, network, params, traj, obs_stats, initial_carry)
    algo_state, algo_metrics = algo.update(state.algo_state, batch, update_key)
    if config.normalize_observations:  # only after acting and updating with the old statistics
        normalizer = normalizer.replace(obs=update_observation_stats(normalizer.obs, traj.obs))
    update_step = state.update_step + 1
    metrics = {
        **episode_metrics(traj.info),
        "env_steps": update_step * config.batch_size,
        "explained_variance": explained_variance(flatten_time_major(batch.value), flatten_time_major(batch.target)),
        **algo_metrics,
    }
    return TrainState(algo_state, runner, key, update_step, normalizer), metrics
