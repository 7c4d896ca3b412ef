"""Vectorised rollouts shared by every algorithm (time-major ``[T, N, ...]``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxrl_ppo.envs.base import Env
from purejaxrl_ppo.networks import ActorCritic, Params
from purejaxrl_ppo.normalization import RunningMeanStd, normalize


class EnvRunnerState(NamedTuple):
    """What the rollout carries from one step (and one update) to the next.

    env_state:     batched env state, leading ``[N]``
    obs:           ``[N, *obs_shape]`` observation to act on
    episode_start: ``[N]`` bool, ``obs`` is the first of an episode
    carry:         policy recurrent state (``()`` for feed-forward policies)
    """

    env_state: Any
    obs: jax.Array
    episode_start: jax.Array
    carry: Any


class Transition(NamedTuple):
    """A rollout, time-major: every field has leading ``[T, N]``.

    obs:           ``[T, N, *obs_shape]`` observation acted on
    action:        ``[T, N]`` int32 or ``[T, N, A]`` float32, as sampled (before clip/tanh)
    log_prob:      ``[T, N]`` log π_old(action | obs)
    value:         ``[T, N]`` V_old(obs)
    reward:        ``[T, N]``
    terminated:    ``[T, N]`` bool, MDP terminal: no bootstrap
    done:          ``[T, N]`` bool, episode ended (terminated or truncated)
    final_obs:     ``[T, N, *obs_shape]`` true next observation (before auto-reset)
    episode_start: ``[T, N]`` bool, ``obs`` began an episode (for recurrent policies)
    info:          dict of ``[T, N]`` arrays from env wrappers (episode statistics)
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    final_obs: jax.Array
    episode_start: jax.Array
    info: dict


def reset_envs(env: Env, network: ActorCritic, key: jax.Array, num_envs: int) -> EnvRunnerState:
    """Reset ``num_envs`` environments with independent keys."""
    obs, env_state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return EnvRunnerState(env_state, obs, jnp.ones((num_envs,), bool), network.initial_carry((num_envs,)))


def policy_input(obs: jax.Array, obs_stats: RunningMeanStd | None) -> jax.Array:
    """What the networks see: ``obs`` normalised with ``obs_stats``, or as is when ``None``."""
    return obs if obs_stats is None else normalize(obs_stats, obs)


def _env_step(
    env: Env,
    network: ActorCritic,
    params: Params,
    runner: EnvRunnerState,
    keys: jax.Array,
    obs_stats: RunningMeanStd | None = None,
) -> tuple[EnvRunnerState, Transition]:
    """Act in all ``N`` envs once: ``runner -> (runner', Transition with leading [N])``.

    keys: ``[N + 1]`` keys, the first for sampling actions, one per env after it.
    The transition holds raw observations; the policy acts on ``policy_input``.
    """
    obs = policy_input(runner.obs, obs_stats)
    carry, dist_params, value = network.step(params, runner.carry, obs, runner.episode_start)
    action, log_prob = network.distribution(dist_params).sample_and_log_prob(seed=keys[0])
    result = jax.vmap(env.step)(keys[1:], runner.env_state, network.env_action(action))
    done = jnp.logical_or(result.terminated, result.truncated)
    transition = Transition(
        obs=runner.obs,
        action=action,
        log_prob=log_prob,
        value=value,
        reward=result.reward,
        terminated=result.terminated,
        done=done,
        final_obs=result.final_obs,
        episode_start=runner.episode_start,
        info=result.info,
    )
    return EnvRunnerState(result.state, result.obs, done, carry), transition


def collect(
    env: Env,
    network: ActorCritic,
    params: Params,
    runner: EnvRunnerState,
    key: jax.Array,
    num_steps: int,
    obs_stats: RunningMeanStd | None = None,
) -> tuple[EnvRunnerState, Transition]:
    """Roll the current policy for ``num_steps`` steps in every env.

    With ``obs_stats`` the policy acts on normalised observations (the
    transition still records raw ones). Returns the runner state to continue
    from and a :class:`Transition` with leading ``[num_steps, N]``.
    """
    num_envs = runner.obs.shape[0]
    # Every key of the rollout in one call: on CPU each threefry call inside the
    # scan is a loop of its own, so splitting per step costs measurable time.
    step_keys = jax.random.split(key, (num_steps, num_envs + 1))

    def body(runner: EnvRunnerState, keys: jax.Array):
        return _env_step(env, network, params, runner, keys, obs_stats)

    return jax.lax.scan(body, runner, step_keys)


def bootstrap_values(network: ActorCritic, critic_params: Params, batch: Transition) -> jax.Array:
    """``next_values [T, N]``: V of the true next observation of every transition.

    Using ``final_obs`` for every step (not the next step's ``obs``) makes
    truncated episodes bootstrap from their real last state, not from the first
    state of the next episode.
    """
    return network.value(critic_params, batch.final_obs)
