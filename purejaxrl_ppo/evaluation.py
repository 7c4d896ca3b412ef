"""Deterministic evaluation of a trained policy, and saving/loading what it needs.

``evaluate(config, params, key, num_episodes)`` runs ``num_episodes`` episodes
in parallel with the mean (continuous) or argmax (discrete) action, through the
same ``env_action`` mapping (clip or tanh) and observation normalisation as
training, and returns each episode's undiscounted return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from purejaxrl_ppo.config import BaseConfig
from purejaxrl_ppo.envs import make_env
from purejaxrl_ppo.networks import ActorCritic, Params, make_network
from purejaxrl_ppo.normalization import RunningMeanStd
from purejaxrl_ppo.rollout import policy_input

POLICY_FILE = "policy.msgpack"


class PolicyRollout(NamedTuple):
    """A deterministic rollout, time-major ``[T, E]`` (E parallel episodes).

    env_state: the wrapped env states *before* each step (for rendering)
    reward:    ``[T, E]``
    done:      ``[T, E]`` bool, the episode ended at this step
    """

    env_state: Any
    reward: jax.Array
    done: jax.Array


def greedy_action(network: ActorCritic, params: Params, obs: jax.Array, obs_stats: RunningMeanStd | None) -> jax.Array:
    """The env action of the deterministic policy for ``obs [E, *obs_shape]``."""
    dist_params = network.policy(params["actor"], policy_input(obs, obs_stats))
    return network.env_action(network.deterministic_action(dist_params))


def policy_rollout(
    config: BaseConfig, params: Params, key: jax.Array, num_envs: int, num_steps: int,
    obs_stats: RunningMeanStd | None = None,
) -> PolicyRollout:
    """Run the deterministic policy ``num_steps`` steps in ``num_envs`` envs (auto-resetting)."""
    env = make_env(config.env_name)
    network = make_network(config, env.action_space, env.observation_shape)
    reset_key, step_key = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

    def body(carry, keys):
        obs, state = carry
        action = greedy_action(network, params, obs, obs_stats)
        result = jax.vmap(env.step)(keys, state, action)
        done = jnp.logical_or(result.terminated, result.truncated)
        return (result.obs, result.state), PolicyRollout(state, result.reward, done)

    _, rollout = jax.lax.scan(body, (obs, state), jax.random.split(step_key, (num_steps, num_envs)))
    return rollout


def first_episode_returns(reward: jax.Array, done: jax.Array) -> jax.Array:
    """Return of each env's first episode: ``reward, done [T, E] -> [E]`` (NaN if unfinished)."""
    before_end = jnp.cumsum(done, axis=0) - done  # episodes finished before step t
    first = before_end == 0
    finished = done.any(axis=0)
    return jnp.where(finished, (reward * first).sum(axis=0), jnp.nan)


def evaluate(
    config: BaseConfig, params: Params, key: jax.Array, num_episodes: int, obs_stats: RunningMeanStd | None = None
) -> jax.Array:
    """Per-episode returns ``[num_episodes]`` of the deterministic policy.

    params: ``{"actor", "critic"}`` of one seed (e.g. ``TrainOutput.params``,
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


# ----------------------------------------------------------------------------- saving a policy
def save_policy(path: Path, params: Params, obs_stats: RunningMeanStd | None) -> None:
    """Write ``params`` (any leading seed axis kept) and the observation statistics as msgpack."""
    tree = {"params": jax.device_get(params)}
    if obs_stats is not None:
        tree["obs_stats"] = {"count": obs_stats.count, "mean": obs_stats.mean, "var": obs_stats.var}
    Path(path).write_bytes(serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, tree)))


def load_policy(path: Path) -> tuple[Params, RunningMeanStd | None]:
    """Inverse of :func:`save_policy`: ``(params, obs_stats or None)``."""
    tree = serialization.msgpack_restore(Path(path).read_bytes())
    stats = tree.get("obs_stats")
    return tree["params"], None if stats is None else RunningMeanStd(stats["count"], stats["mean"], stats["var"])


def select_seed(tree: Any, index: int) -> Any:
    """Slice seed ``index`` out of a pytree with a leading seed axis."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)
