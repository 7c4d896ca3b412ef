"""Algorithms as pluggable updates.

Each algorithm is a frozen dataclass built from ``(config, network)`` with

* ``init(key) -> state`` (a pytree with a ``params`` field ``{"actor", "critic"}``), and
* ``update(state, batch: UpdateBatch, key) -> (state, metrics)``,

like an optax transformation. ``train.py`` never asks which algorithm it runs;
adding one means a module here, a config class, and one line in ``ALGORITHMS``.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

from purejaxrl_ppo.algos.common import UpdateBatch, minibatch_epochs
from purejaxrl_ppo.algos.ppo import PPO, PPOState, adapt_kl_coef, ppo_loss
from purejaxrl_ppo.algos.trpo import TRPO, TRPOState, conjugate_gradient, make_fisher_vector_product
from purejaxrl_ppo.config import BaseConfig, PPOConfig, TRPOConfig
from purejaxrl_ppo.networks import ActorCritic


class Algorithm(Protocol):
    def init(self, key: jax.Array) -> Any: ...

    def update(self, state: Any, batch: UpdateBatch, key: jax.Array) -> tuple[Any, dict[str, jax.Array]]: ...


ALGORITHMS: dict[type[BaseConfig], type] = {PPOConfig: PPO, TRPOConfig: TRPO}


def make_algorithm(config: BaseConfig, network: ActorCritic) -> Algorithm:
    """The algorithm that ``config``'s type names, bound to ``network``."""
    try:
        cls = ALGORITHMS[type(config)]
    except KeyError:
        raise TypeError(f"no algorithm registered for config type {type(config).__name__}") from None
    return cls(config, network)


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "PPO",
    "PPOState",
    "TRPO",
    "TRPOState",
    "adapt_kl_coef",
    "UpdateBatch",
    "conjugate_gradient",
    "make_algorithm",
    "make_fisher_vector_product",
    "minibatch_epochs",
    "ppo_loss",
]
