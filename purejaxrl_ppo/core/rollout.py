"""Vectorised rollouts shared by every algorithm (time-major ``[T, N, ...]``).

The policy acts through the :class:`~purejaxrl_ppo.core.networks.base.Network` protocol,
one time step of ``N`` envs at a time, threading the network's carry in
:class:`~purejaxrl_ppo.core.types.EnvRunnerState` (reset where an episode starts).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from typing import Any

from purejaxrl_ppo.core.envs.base import ACTION_MASK, Env
from purejaxrl_ppo.core.networks import Network, Params, step
from purejaxrl_ppo.core.networks.base import no_valid_action
from purejaxrl_ppo.core.normalization import normalize_observation
from purejaxrl_ppo.core.types import EnvRunnerState, Transition, flatten_time_major


def reset_envs(env: Env, network: Network, key: jax.Array, num_envs: int) -> EnvRunnerState:
    """Reset ``num_envs`` environments with independent keys."""
    obs, env_state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return EnvRunnerState(env_state, obs, jnp.ones((num_envs,), bool), network.initial_carry((num_envs,)))


def policy_input(obs: Any, obs_stats: Any | None) -> Any:
    """What the networks see: ``obs`` normalised with ``obs_stats``, or as is when ``None``."""
    return obs if obs_stats is None else normalize_observation(obs_stats, obs)


def _raise_no_valid_action(count) -> None:
    if int(count.sum()) > 0:
        raise ValueError(f"{int(count.sum())} environment state(s) allow no action: every action (of some factor) is "
                         f"masked out by the env's {ACTION_MASK!r}; a masked env must allow at least one action per "
                         f"factor in every state (purejaxrl_ppo.check_env finds such states)")


def check_some_action_allowed(env: Env, obs: Any) -> None:
    """For a masked action space: fail the run with a clear error when any of the ``[N]`` observations
    allows no action (sampling would otherwise pick a forbidden one from a uniform over masked logits)."""
    if env.action_space.masked:
        jax.debug.callback(_raise_no_valid_action, no_valid_action(env.action_space, obs[ACTION_MASK]).sum())


def _env_step(
    env: Env,
    network: Network,
    params: Params,
    runner: EnvRunnerState,
    keys: jax.Array,
    obs_stats: Any | None = None,
) -> tuple[EnvRunnerState, Transition]:
    """Act in all ``N`` envs once: ``runner -> (runner', Transition with leading [N])``.

    keys: ``[N + 1]`` keys, the first for sampling actions, one per env after it.
    The transition holds raw observations; the policy acts on ``policy_input``.
    """
    check_some_action_allowed(env, runner.obs)
    obs = policy_input(runner.obs, obs_stats)
    carry, dist_params, value = step(network, params, runner.carry, obs, runner.episode_start)
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
        carry=carry,
    )
    return EnvRunnerState(result.state, result.obs, done, carry), transition


def collect(
    env: Env,
    network: Network,
    params: Params,
    runner: EnvRunnerState,
    key: jax.Array,
    num_steps: int,
    obs_stats: Any | None = None,
) -> tuple[EnvRunnerState, Transition]:
    """Roll the current policy for ``num_steps`` steps in every env.

    With ``obs_stats`` the policy acts on normalised observations (the
    transition still records raw ones). Returns the runner state to continue
    from and a :class:`Transition` with leading ``[num_steps, N]``.
    """
    num_envs = runner.episode_start.shape[0]
    # Every key of the rollout in one call: on CPU each threefry call inside the
    # scan is a loop of its own, so splitting per step costs measurable time.
    step_keys = jax.random.split(key, (num_steps, num_envs + 1))

    def body(runner: EnvRunnerState, keys: jax.Array):
        return _env_step(env, network, params, runner, keys, obs_stats)

    return jax.lax.scan(body, runner, step_keys)


def bootstrap_values(network: Network, params: Params, batch: Transition, initial_carry=()) -> jax.Array:
    """``next_values [T, N]``: V of the true next observation of every transition.

    Using ``final_obs`` for every step (not the next step's ``obs``) makes
    truncated episodes bootstrap from their real last state, not from the first
    state of the next episode. ``batch.final_obs`` must already be the network's input
    (normalised if the run normalises). Feed-forward networks ignore ``initial_carry``
    (the carry at the start of the rollout). A recurrent network evaluates ``final_obs[t]``
    as one more step of that episode: from ``batch.carry[t]``, the carry after acting at t
    (before the reset of a new episode), all ``T·N`` of them as one batch.
    """
    if not network.recurrent:
        return network.value(params, initial_carry, batch.final_obs, batch.episode_start)[1]
    steps, envs = batch.done.shape
    carry = jax.tree_util.tree_map(flatten_time_major, batch.carry)
    final_obs = jax.tree_util.tree_map(lambda x: flatten_time_major(x)[None], batch.final_obs)
    value = network.value(params, carry, final_obs, jnp.zeros((1, steps * envs), bool))[1]
    return value.reshape(steps, envs)
