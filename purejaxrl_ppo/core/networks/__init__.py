"""Policy networks by protocol (:class:`~purejaxrl_ppo.core.networks.base.Network`), chosen by name.

``make_network(config, action_space, observation)`` builds the network that
``config.policy`` names, for an observation spec (an array spec, a dict of them, or a flat shape). A network module registers its factory with
:func:`register_network`; every module in this folder is imported on first use, so
adding an architecture is one new file here (no other file lists networks).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ActionSpace
from purejaxrl_ppo.core.networks.base import (
    ActionHead,
    Carry,
    DistParams,
    Network,
    Params,
    TanhGaussian,
    entropy,
    entropy_noise,
    leading_size,
    one_key_at_a_time,
    policy_on_transitions,
    step,
    value_on_transitions,
)

NetworkFactory = Callable[[Any, ActionSpace, tuple[int, ...]], Network]
_NETWORKS: dict[str, NetworkFactory] = {}
_RECURRENT: set[str] = set()


def register_network(name: str, recurrent: bool = False) -> Callable[[NetworkFactory], NetworkFactory]:
    """Decorator: ``factory(config, action_space, observation) -> Network`` under ``name``
    (``observation``: the shape tuple of a flat float32 observation, else the env's observation spec,
    :func:`~purejaxrl_ppo.core.envs.base.observation_spec`: a ``jax.ShapeDtypeStruct`` or a dict of them).

    ``recurrent``: the network carries state (configs then check that minibatches of whole
    sequences fit, before any network is built).
    """

    def register(factory: NetworkFactory) -> NetworkFactory:
        if name in _NETWORKS and _NETWORKS[name] is not factory:
            raise ValueError(f"a network named {name!r} is already registered")
        _NETWORKS[name] = factory
        if recurrent:
            _RECURRENT.add(name)
        return factory

    return register


def is_recurrent(name: str) -> bool:
    """Whether the network registered as ``name`` carries state."""
    _discover()
    return name in _RECURRENT


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def registered_networks() -> tuple[str, ...]:
    """Names a config's ``policy`` field accepts."""
    _discover()
    return tuple(sorted(_NETWORKS))


def make_network(config: Any, action_space: ActionSpace, observation: Any) -> Network:
    """The network ``config.policy`` names (default ``"mlp"``), built for this action space and observation
    (a spec from :func:`~purejaxrl_ppo.core.envs.base.observation_spec`, or a flat shape tuple)."""
    _discover()
    name = getattr(config, "policy", "mlp")
    if name not in _NETWORKS:
        raise ValueError(f"unknown policy network {name!r}; registered: {sorted(_NETWORKS)}")
    return _NETWORKS[name](config, action_space, _factory_observation(observation))


def _factory_observation(observation: Any) -> Any:
    """What a factory receives: the shape tuple for one float32 array (as factories always have), else the spec."""
    if isinstance(observation, jax.ShapeDtypeStruct) and observation.dtype == jnp.float32:
        return tuple(observation.shape)
    return observation


from purejaxrl_ppo.core.networks.feedforward import ActorCritic  # noqa: E402  (registers "mlp")

__all__ = [
    "ActionHead",
    "ActorCritic",
    "Carry",
    "DistParams",
    "Network",
    "Params",
    "TanhGaussian",
    "entropy",
    "entropy_noise",
    "is_recurrent",
    "leading_size",
    "make_network",
    "one_key_at_a_time",
    "policy_on_transitions",
    "register_network",
    "registered_networks",
    "step",
    "value_on_transitions",
]
