"""Deterministic evaluation of a trained policy (device side; saving a policy is :mod:`purejaxrl_ppo.runs.policy_files`).

``evaluate(config, params, key, num_episodes)`` runs ``num_episodes`` episodes
in parallel with the mean (continuous) or argmax (discrete) action, through the
same ``env_action`` mapping (clip or tanh) and observation normalisation as
training, and returns each episode's undiscounted return.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.core.envs import make_env, observation_spec
from purejaxrl_ppo.core.networks import Carry, Network, Params, make_network, step
from purejaxrl_ppo.core.rollout import policy_input


class PolicyRollout(NamedTuple):
    """A deterministic rollout, time-major ``[T, E]`` (E parallel episodes).

    env_state: the wrapped env states *before* each step (for rendering)
    reward:    ``[T, E]``
    done:      ``[T, E]`` bool, the episode ended at this step
    """

    env_state: Any
    reward: jax.Array
    done: jax.Array


def greedy_action(
    network: Network, params: Params, carry: Carry, obs: Any, reset: jax.Array, obs_stats: Any | None
) -> tuple[Carry, jax.Array]:
    """``(carry, env action)`` of the deterministic policy for ``obs [E, *obs_shape]``, ``reset [E]``."""
    carry, dist_params, _ = step(network, params, carry, policy_input(obs, obs_stats), reset)
    return carry, network.env_action(network.deterministic_action(dist_params))


def policy_rollout(
    config: BaseConfig, params: Params, key: jax.Array, num_envs: int, num_steps: int,
    obs_stats: Any | None = None,
) -> PolicyRollout:
    """Run the deterministic policy ``num_steps`` steps in ``num_envs`` envs (auto-resetting)."""
    env = make_env(config.env_name)
    network = make_network(config, env.action_space, observation_spec(env))
    reset_key, step_key = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))
    start = (obs, state, network.initial_carry((num_envs,)), jnp.ones((num_envs,), bool))

    def body(loop, keys):
        obs, state, carry, reset = loop
        carry, action = greedy_action(network, params, carry, obs, reset, obs_stats)
        result = jax.vmap(env.step)(keys, state, action)
        done = jnp.logical_or(result.terminated, result.truncated)
        return (result.obs, result.state, carry, done), PolicyRollout(state, result.reward, done)

    _, rollout = jax.lax.scan(body, start, jax.random.split(step_key, (num_steps, num_envs)))
    return rollout


def first_episode_returns(reward: jax.Array, done: jax.Array) -> jax.Array:
    """Return of each env's first episode: ``reward, done [T, E] -> [E]`` (NaN if unfinished)."""
    before_end = jnp.cumsum(done, axis=0) - done  # episodes finished before step t
    first = before_end == 0
    finished = done.any(axis=0)
    return jnp.where(finished, (reward * first).sum(axis=0), jnp.nan)


def evaluate(
    config: BaseConfig, params: Params, key: jax.Array, num_episodes: int, obs_stats: Any | None = None
) -> jax.Array:
    """Per-episode returns ``[num_episodes]`` of the deterministic policy.

    params: the network's parameters of one seed (e.g. ``TrainOutput.params``,
    or one seed's slice of a vmapped run); obs_stats: the run's observation
    statistics when it trained with ``normalize_observations``
    (``TrainOutput.state.normalizer.obs``). Every episode runs to its
    termination or time limit. Pure and jittable (``config`` static).
    """
    if config.normalize_observations and obs_stats is None:
        raise ValueError("config.normalize_observations is set: pass obs_stats (the run's normalizer.obs)")
    steps = make_env(config.env_name).max_episode_steps
    rollout = policy_rollout(config, params, key, num_episodes, steps, obs_stats)
    return first_episode_returns(rollout.reward, rollout.done)
