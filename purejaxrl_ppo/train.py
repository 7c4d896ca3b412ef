"""``make_train(config) -> train(key)``: the whole run as one ``jax.lax.scan``.

Each scan step collects a rollout from ``num_envs`` environments, computes GAE
with bootstrapping from the true final observation, and applies the
algorithm's update. Nothing here depends on which algorithm runs.

The run is also exposed in two parts, :func:`init_train_state` and
:func:`train_updates`, so a host loop can run it in chunks of updates (for
progress or checkpoints) with results bit-identical to the single scan.

Periodic evaluation (``config.eval_every`` > 0) adds an ``eval_return`` metric:
after every ``eval_every``-th update (counted from the start of the run) the
mean return of :func:`~purejaxrl_ppo.evaluation.evaluate` over
``eval_episodes`` deterministic episodes, NaN after the other updates. The
evaluation draws its key with :func:`evaluation_key` instead of splitting the
training key, so switching it on leaves training itself unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from purejaxrl_ppo.algos import UpdateBatch, make_algorithm
from purejaxrl_ppo.config import BaseConfig
from purejaxrl_ppo.envs import make_env
from purejaxrl_ppo.evaluation import evaluate
from purejaxrl_ppo.gae import gae
from purejaxrl_ppo.networks import ActorCritic, make_network
from purejaxrl_ppo.normalization import NormalizerState, RunningMeanStd, init_normalizer, scale_rewards, update_stats
from purejaxrl_ppo.rollout import EnvRunnerState, Transition, bootstrap_values, collect, policy_input, reset_envs


class TrainState(NamedTuple):
    """Everything one seed carries between updates.

    algo_state:  the algorithm's state (``.params`` = ``{"actor", "critic"}``, optimiser state)
    runner:      environments and the observation to act on
    key:         PRNG key for the next update
    update_step: int32 scalar, updates done so far
    normalizer:  observation statistics and reward scaler (used when the config enables them)
    """

    algo_state: Any
    runner: EnvRunnerState
    key: jax.Array
    update_step: jax.Array
    normalizer: NormalizerState


class TrainOutput(NamedTuple):
    """Result of ``train(key)``.

    metrics: dict of arrays with leading ``[num_updates]`` (``[seeds, num_updates]`` under vmap)
    state:   the final :class:`TrainState`
    """

    metrics: dict[str, jax.Array]
    state: TrainState

    @property
    def params(self) -> Any:
        """Final ``{"actor": ..., "critic": ...}`` parameters."""
        return self.state.algo_state.params


def _components(config: BaseConfig):
    if not isinstance(config, BaseConfig):
        raise TypeError(f"expected a PPOConfig or TRPOConfig, got {type(config).__name__}")
    env = make_env(config.env_name)
    network = make_network(config, env.action_space, env.observation_shape)
    return env, network, make_algorithm(config, network)


def init_train_state(config: BaseConfig, key: jax.Array) -> TrainState:
    """Fresh parameters, optimiser state and reset environments for one seed."""
    env, network, algo = _components(config)
    key, params_key, env_key = jax.random.split(key, 3)
    runner = reset_envs(env, network, env_key, config.num_envs)
    normalizer = init_normalizer(env.observation_shape, config.num_envs)
    return TrainState(algo.init(params_key), runner, key, jnp.int32(0), normalizer)


def observation_stats(config: BaseConfig, normalizer: NormalizerState) -> RunningMeanStd | None:
    """The statistics the policy normalises with, or ``None`` when normalisation is off."""
    return normalizer.obs if config.normalize_observations else None


def _flatten(x: jax.Array) -> jax.Array:
    """``[T, N, ...] -> [T*N, ...]``."""
    return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


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
    """1 - Var[target - V] / Var[target] (NaN when the targets have no variance)."""
    var_targets = targets.var()
    return jnp.where(var_targets > 0, 1.0 - (targets - values).var() / jnp.where(var_targets > 0, var_targets, 1.0), jnp.nan)


def make_update_batch(
    config: BaseConfig,
    network: ActorCritic,
    critic_params: Any,
    traj: Transition,
    obs_stats: RunningMeanStd | None = None,
) -> UpdateBatch:
    """GAE on a ``[T, N]`` rollout, flattened into the algorithm's ``[T*N]`` batch.

    ``obs`` and ``final_obs`` are normalised with ``obs_stats`` (the statistics
    the rollout acted with), so the batch holds exactly the policy's inputs.
    """
    traj = traj._replace(obs=policy_input(traj.obs, obs_stats), final_obs=policy_input(traj.final_obs, obs_stats))
    next_values = bootstrap_values(network, critic_params, traj)
    advantages, targets = gae(
        traj.reward, traj.value, next_values, traj.terminated, traj.done, config.gamma, config.gae_lambda
    )
    fields = (traj.obs, traj.action, traj.log_prob, traj.value, advantages, targets)
    return UpdateBatch(*map(_flatten, fields))


def _update_step(config: BaseConfig, env, network: ActorCritic, algo, state: TrainState):
    """Rollout -> GAE -> algorithm update; returns ``(state, scalar metrics)``."""
    key, rollout_key, update_key = jax.random.split(state.key, 3)
    params = state.algo_state.params
    normalizer = state.normalizer
    obs_stats = observation_stats(config, normalizer)
    runner, traj = collect(env, network, params, state.runner, rollout_key, config.num_steps, obs_stats)
    if config.scale_rewards:
        reward_scaler, scaled = scale_rewards(normalizer.rewards, traj.reward, traj.done, config.gamma)
        normalizer = normalizer.replace(rewards=reward_scaler)
        traj = traj._replace(reward=scaled)
    batch = make_update_batch(config, network, params["critic"], traj, obs_stats)
    algo_state, algo_metrics = algo.update(state.algo_state, batch, update_key)
    if config.normalize_observations:  # only after acting and updating with the old statistics
        normalizer = normalizer.replace(obs=update_stats(normalizer.obs, traj.obs))
    update_step = state.update_step + 1
    metrics = {
        **episode_metrics(traj.info),
        "env_steps": update_step * config.batch_size,
        "explained_variance": explained_variance(batch.value, batch.target),
        **algo_metrics,
    }
    return TrainState(algo_state, runner, key, update_step, normalizer), metrics


#: Folded into the train state's key to draw the periodic evaluation's key (the training key stream is untouched).
EVAL_KEY_SALT = 0x6576616C  # "eval"


def evaluation_key(state: TrainState) -> jax.Array:
    """The key periodic evaluation uses after the update that produced ``state``."""
    return jax.random.fold_in(state.key, EVAL_KEY_SALT)


def periodic_eval(config: BaseConfig, state: TrainState, update_number: jax.Array) -> jax.Array:
    """Mean deterministic return (float32 scalar) if ``update_number % eval_every == 0``, else NaN.

    A ``lax.cond``: when ``update_number`` is not batched (see :func:`train_updates`) it stays a
    branch under ``vmap`` and the evaluation runs only on evaluation updates.
    """

    def run(state: TrainState) -> jax.Array:
        obs_stats = observation_stats(config, state.normalizer)
        returns = evaluate(config, state.algo_state.params, evaluation_key(state), config.eval_episodes, obs_stats)
        return returns.mean().astype(jnp.float32)

    return jax.lax.cond(update_number % config.eval_every == 0, run, lambda _: jnp.float32(jnp.nan), state)


def train_updates(
    config: BaseConfig, state: TrainState, num_updates: int, first_update: int | jax.Array | None = None
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Run ``num_updates`` (static) updates in one scan; metrics have leading ``[num_updates]``.

    first_update: updates done before this call (an int or int32 scalar; periodic evaluation
    only). Pass it, unbatched, when vmapping over seeds, e.g.
    ``jax.vmap(lambda s, u: train_updates(config, s, n, u), in_axes=(0, None))``: the
    evaluation then runs only on evaluation updates. Left ``None``, it is read from
    ``state.update_step``, which under ``vmap`` is batched and turns the branch into a
    select that evaluates after every update (same metrics, much slower).
    """
    env, network, algo = _components(config)
    numbers = None if first_update is None else first_update + jnp.arange(1, num_updates + 1, dtype=jnp.int32)

    def body(state: TrainState, number):
        state, metrics = _update_step(config, env, network, algo, state)
        if config.eval_every:
            metrics["eval_return"] = periodic_eval(config, state, state.update_step if number is None else number)
        return state, metrics

    return jax.lax.scan(body, state, numbers, length=num_updates)


def run_training(config: BaseConfig, key: jax.Array) -> TrainOutput:
    """The whole training run for one seed, pure in ``key`` and in ``config``'s numeric leaves.

    ``config`` is a pytree whose numeric hyperparameters may be traced, e.g.
    ``jax.vmap(run_training)(stacked_configs, keys)`` for a sweep in one compile.
    """
    state, metrics = train_updates(config, init_train_state(config, key), config.num_updates, first_update=0)
    return TrainOutput(metrics, state)


def make_train(config: BaseConfig) -> Callable[[jax.Array], TrainOutput]:
    """A pure function ``train(key) -> TrainOutput`` for ``config``.

    ``jax.jit(jax.vmap(make_train(config)))(keys)`` trains ``len(keys)`` seeds
    in one compiled program.
    """
    _components(config)  # fail now, not at trace time, on a bad env or config type

    def train(key: jax.Array) -> TrainOutput:
        return run_training(config, key)

    return train
