"""``make_train(config) -> train(key)``: the whole run as one ``jax.lax.scan``.

Each scan step is one iteration of the algorithm (``algo.iteration``: by default a
rollout from ``num_envs`` environments, GAE with bootstrapping from the true final
observation, and the algorithm's update; see :mod:`purejaxrl_ppo.core.iteration`).
Nothing here depends on which algorithm or network runs.

The run is also exposed in two parts, :func:`init_train_state` and
:func:`train_updates`, so a host loop can run it in chunks of updates (for
progress or checkpoints) with results bit-identical to the single scan.

Periodic evaluation (``config.eval_every`` > 0) adds an ``eval_return`` metric:
after every ``eval_every``-th update (counted from the start of the run) the
mean return of :func:`~purejaxrl_ppo.core.evaluate.evaluate` over
``eval_episodes`` deterministic episodes, NaN after the other updates. The
evaluation draws its key with :func:`evaluation_key` instead of splitting the
training key, so switching it on leaves training itself unchanged.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.algos import Algorithm, make_algorithm
from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.core.envs import make_env
from purejaxrl_ppo.core.envs.base import Env, observation_spec
from purejaxrl_ppo.core.evaluate import evaluate
from purejaxrl_ppo.core.iteration import observation_stats
from purejaxrl_ppo.core.networks import Network, make_network
from purejaxrl_ppo.core.normalization import init_normalizer
from purejaxrl_ppo.core.rollout import reset_envs
from purejaxrl_ppo.core.types import TrainOutput, TrainState


def components(config: BaseConfig) -> tuple[Env, Network, Algorithm]:
    """The environment, network and algorithm that ``config`` describes."""
    if not isinstance(config, BaseConfig):
        raise TypeError(f"expected an algorithm config (PPOConfig, TRPOConfig, ...), got {type(config).__name__}")
    env = make_env(config.env_name)
    network = make_network(config, env.action_space, observation_spec(env))
    return env, network, make_algorithm(config, network)


def init_train_state(config: BaseConfig, key: jax.Array) -> TrainState:
    """Fresh parameters, optimiser state and reset environments for one seed."""
    env, network, algo = components(config)
    key, params_key, env_key = jax.random.split(key, 3)
    runner = reset_envs(env, network, env_key, config.num_envs)
    normalizer = init_normalizer(observation_spec(env), config.num_envs)
    return TrainState(algo.init(params_key), runner, key, jnp.int32(0), normalizer)


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
    """Run ``num_updates`` (static) iterations in one scan; metrics have leading ``[num_updates]``.

    first_update: updates done before this call (an int or int32 scalar; periodic evaluation
    only). Pass it, unbatched, when vmapping over seeds, e.g.
    ``jax.vmap(lambda s, u: train_updates(config, s, n, u), in_axes=(0, None))``: the
    evaluation then runs only on evaluation updates. Left ``None``, it is read from
    ``state.update_step``, which under ``vmap`` is batched and turns the branch into a
    select that evaluates after every update (same metrics, much slower).
    """
    env, _, algo = components(config)
    numbers = None if first_update is None else first_update + jnp.arange(1, num_updates + 1, dtype=jnp.int32)

    def body(state: TrainState, number):
        state, metrics = algo.iteration(env, state)
        if config.eval_every:
            metrics["eval_return"] = periodic_eval(config, state, state.update_step if number is None else number)
        return state, metrics

    return jax.lax.scan(body, state, numbers, length=num_updates)


#: How to train many seeds, named in the error for a batch of keys passed where one key goes.
MANY_SEEDS_HINT = ("for many seeds use jax.vmap(train)(jax.random.split(key, n)) "
                   "or purejaxrl_ppo.train_seeds(config, n, key)")


def check_single_key(key: jax.Array, hint: str = MANY_SEEDS_HINT) -> None:
    """Raise a ``ValueError`` (``TypeError`` for a non-array) unless ``key`` is one PRNG key.

    One key is a typed key of shape ``()`` (``jax.random.key``) or a raw ``uint32`` key of the
    default implementation's shape, ``(2,)`` for threefry (``jax.random.PRNGKey``). Only shapes
    and dtypes are read, so the check works on tracers (under ``vmap`` on one example's shape).
    """
    if not hasattr(key, "shape") or not hasattr(key, "dtype"):
        raise TypeError(f"expected one PRNG key (jax.random.PRNGKey(seed) or jax.random.key(seed)), "
                        f"got {type(key).__name__}")
    shape = tuple(key.shape)
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(f"expected one PRNG key (a typed key of shape ()), got a key array of shape {shape}; "
                             f"{hint}")
        return
    raw_shape = tuple(jax.eval_shape(lambda: jax.random.PRNGKey(0)).shape)
    if shape != raw_shape or key.dtype != jnp.uint32:
        raise ValueError(f"expected one PRNG key (a uint32 array of shape {raw_shape}), got an array of shape "
                         f"{shape} and dtype {key.dtype}; {hint}")


def run_training(config: BaseConfig, key: jax.Array) -> TrainOutput:
    """The whole training run for one seed, pure in ``key`` and in ``config``'s numeric leaves.

    key: one PRNG key (raw ``[2]`` uint32 or typed ``[]``); a batch of keys is refused with a
    hint (:func:`check_single_key`): vmap over the keys instead.
    ``config`` is a pytree whose numeric hyperparameters may be traced, e.g.
    ``jax.vmap(run_training)(stacked_configs, keys)`` for a sweep in one compile.
    """
    check_single_key(key)
    state, metrics = train_updates(config, init_train_state(config, key), config.num_updates, first_update=0)
    return TrainOutput(metrics, state)


def make_train(config: BaseConfig) -> Callable[[jax.Array], TrainOutput]:
    """A pure function ``train(key) -> TrainOutput`` for ``config``.

    ``jax.jit(jax.vmap(make_train(config)))(keys)`` trains ``len(keys)`` seeds
    in one compiled program. ``train`` takes exactly one key (a ``ValueError`` with that
    hint otherwise, also under ``jit``/``vmap``, where one example's shape is checked).
    """
    components(config)  # fail now, not at trace time, on a bad env or config type

    def train(key: jax.Array) -> TrainOutput:
        return run_training(config, key)

    return train
