"""What every algorithm is, and the pieces their updates share.

An algorithm is a frozen dataclass built from ``(config, network)`` with

* ``init(key) -> state`` (a pytree with a ``params`` field: the network's parameters),
* ``update(state, batch: UpdateBatch, key) -> (state, metrics)`` on a time-major
  ``[T, N]`` batch (it flattens or keeps sequences itself), and
* ``iteration(env, train_state) -> (train_state, metrics)``, one whole training
  iteration; the default is rollout → advantages → update
  (:func:`~purejaxrl_ppo.core.iteration.rollout_iteration`). Override it for a
  different loop (e.g. generate → score → update for language models).

Subclasses name their config class (``config_class``) and register themselves with
:func:`purejaxrl_ppo.core.algos.register_algorithm`; the training loop never asks which
algorithm it runs.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.core.envs.base import Env
from purejaxrl_ppo.core.iteration import rollout_iteration
from purejaxrl_ppo.core.networks import DistParams, Network, Params, policy_on_transitions, value_on_transitions
from purejaxrl_ppo.core.shuffle import permutation
from purejaxrl_ppo.core.types import TrainState, UpdateBatch


@dataclasses.dataclass(frozen=True)
class Algorithm(abc.ABC):
    """Base class: an algorithm bound to its config and network (see the module docstring)."""

    config: BaseConfig
    network: Network

    #: The config class this algorithm reads (its ``algo_name`` is the algorithm's name).
    config_class: ClassVar[type[BaseConfig]] = BaseConfig
    #: Config fields this algorithm sets on every Brax task (the CLI applies them under the flags given).
    brax_defaults: ClassVar[dict[str, Any]] = {}
    #: Whether ``update`` keeps whole sequences (needed for a network that carries state).
    supports_recurrent: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if getattr(self.network, "recurrent", False) and not self.supports_recurrent:
            raise ValueError(f"{self.config_class.algo_name} updates on independent transitions; the "
                             f"{self.config.policy!r} policy carries state and needs sequence minibatches")

    @abc.abstractmethod
    def init(self, key: jax.Array) -> Any:
        """The algorithm's state for one seed: a pytree with a ``params`` field (the network's parameters)."""

    @abc.abstractmethod
    def update(self, state: Any, batch: UpdateBatch, key: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        """``(state, scalar metrics)`` after learning from one time-major ``[T, N]`` batch."""

    @classmethod
    def update_matmul_flops(cls, config: BaseConfig, actor: float, critic: float) -> float | None:
        """Matmul FLOPs of ``update`` per transition, given one forward pass's FLOPs of the actor and the critic.

        A hand count for the throughput benchmark's roofline (a backward pass counts as two
        forwards); ``None`` when the algorithm does not provide one.
        """
        return None

    def iteration(self, env: Env, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        """One training iteration; the default is :func:`~purejaxrl_ppo.core.iteration.rollout_iteration`."""
        return rollout_iteration(self, env, state)


# ----------------------------------------------------------------------------- a batch's network outputs
# An algorithm's loss sees its (mini)batch in one of two forms: independent transitions (``batch.flatten()``,
# ``episode_start`` None: a feed-forward policy) or whole sequences ``[T, n]`` with their initial carries (a
# recurrent policy). These helpers return outputs flattened to ``[M]`` (M = T·n) in both cases, aligned with
# ``batch.flatten()``, so the loss itself is written once.
def batch_policy(network: Network, params: Params, batch: UpdateBatch) -> DistParams:
    """Distribution parameters ``[M, ...]`` of a flat or a sequence batch."""
    if batch.episode_start is None:
        return policy_on_transitions(network, params, batch.obs)
    return batch.flat(network.policy(params, batch.initial_carry, batch.obs, batch.episode_start)[1])


def batch_value(network: Network, params: Params, batch: UpdateBatch) -> jax.Array:
    """Values ``[M]`` of a flat or a sequence batch."""
    if batch.episode_start is None:
        return value_on_transitions(network, params, batch.obs)
    return batch.flat(network.value(params, batch.initial_carry, batch.obs, batch.episode_start)[1])


def batch_policy_and_value(network: Network, params: Params, batch: UpdateBatch) -> tuple[DistParams, jax.Array]:
    """Both, in one pass through a shared or separate recurrent network; two calls for a flat batch."""
    if batch.episode_start is None:
        return batch_policy(network, params, batch), batch_value(network, params, batch)
    _, dist_params, value = network.apply(params, batch.initial_carry, batch.obs, batch.episode_start)
    return batch.flat(dist_params), batch.flat(value)


def policy_of(network: Network, params: Params, inputs: jax.Array | UpdateBatch) -> DistParams:
    """Distribution parameters ``[M, ...]`` of ``inputs``: observations ``[M, *obs_shape]`` of independent
    transitions, or a time-major sequence :class:`UpdateBatch` (a recurrent policy)."""
    if isinstance(inputs, UpdateBatch):
        return batch_policy(network, params, inputs)
    return policy_on_transitions(network, params, inputs)


def select_envs(batch: UpdateBatch, envs: jax.Array) -> UpdateBatch:
    """The sequences of envs ``envs [n]`` (indices) of a time-major batch: ``[T, N] -> [T, n]``."""
    carry = jax.tree_util.tree_map(lambda x: x[envs], batch.initial_carry)
    return jax.tree_util.tree_map(lambda x: x[:, envs], batch._replace(initial_carry=())) \
        ._replace(initial_carry=carry)


def for_update(network: Network, batch: UpdateBatch) -> UpdateBatch:
    """What an update iterates over: independent transitions for a feed-forward network, else the
    sequences env-major (``[N, T, ...]``, so that minibatches split whole sequences)."""
    return batch.env_major() if network.recurrent else batch.flatten()


def as_loss_batch(network: Network, minibatch: UpdateBatch) -> UpdateBatch:
    """A minibatch drawn from :func:`for_update` back in the form :func:`batch_policy` reads."""
    return minibatch.time_major() if network.recurrent else minibatch


def flat_fields(batch: UpdateBatch) -> UpdateBatch:
    """The per-transition fields ``[M]`` of a flat or a sequence batch (a sequence batch is flattened)."""
    return batch if batch.episode_start is None else batch._replace(initial_carry=()).flatten()


def normalize(x: jax.Array, eps: float = 1e-8, mask: jax.Array | None = None) -> jax.Array:
    """``(x - mean) / (std + eps)`` over all elements, or with ``mask`` (0/1, shaped like ``x``) over the
    masked-in elements only (masked-out elements come back 0)."""
    if mask is None:
        return (x - x.mean()) / (x.std() + eps)
    mask = mask.astype(x.dtype)
    count = jnp.maximum(mask.sum(), 1.0)
    mean = (x * mask).sum() / count
    std = jnp.sqrt((jnp.square(x - mean) * mask).sum() / count)
    return (x - mean) / (std + eps) * mask


def minibatch_epochs(
    step: Callable[[Any, Any], tuple[Any, dict]],
    carry: Any,
    data: Any,
    key: jax.Array,
    num_epochs: int,
    num_minibatches: int,
) -> tuple[Any, dict]:
    """Run ``step(carry, minibatch) -> (carry, metrics)`` over shuffled minibatches.

    ``data`` is a pytree of ``[B, ...]`` arrays; each epoch draws a fresh
    permutation (:func:`~purejaxrl_ppo.core.shuffle.permutation`, equal to
    ``jax.random.permutation``) and splits it into ``num_minibatches`` equal minibatches
    (B must be divisible, which the configs check). Returns the final carry
    and every metric averaged over all ``num_epochs * num_minibatches`` steps.
    """
    batch_size = jax.tree_util.tree_leaves(data)[0].shape[0]
    minibatch_size = batch_size // num_minibatches

    def epoch(carry, epoch_key):
        perm = permutation(epoch_key, batch_size)
        # mode="clip": the indices are in bounds, so no out-of-bounds fill (a select over the whole batch).
        shuffled = jax.tree_util.tree_map(
            lambda x: jnp.take(x, perm, axis=0, mode="clip", unique_indices=True).reshape(
                (num_minibatches, minibatch_size) + x.shape[1:]
            ),
            data,
        )
        return jax.lax.scan(step, carry, shuffled)

    carry, metrics = jax.lax.scan(epoch, carry, jax.random.split(key, num_epochs))
    return carry, jax.tree_util.tree_map(jnp.mean, metrics)
