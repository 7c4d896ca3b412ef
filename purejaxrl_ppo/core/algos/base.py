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
from purejaxrl_ppo.core.networks import Network
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


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``(x - mean) / (std + eps)`` over all elements."""
    return (x - x.mean()) / (x.std() + eps)


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
