"""Algorithms: each a folder here that registers itself.

``core/algos/<name>/`` holds the algorithm's config class, its loss and its update,
and its ``__init__`` decorates the :class:`~purejaxrl_ppo.core.algos.base.Algorithm`
subclass with :func:`register_algorithm`. Every subfolder is imported on first use
(:func:`registered_algorithms`), so adding an algorithm is one new folder: nothing
else in the package, the CLI or the benchmarks lists algorithms.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

from purejaxrl_ppo.core.algos.base import Algorithm, minibatch_epochs, normalize
from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.core.networks import Network

_ALGORITHMS: dict[str, type[Algorithm]] = {}
_discovered = False


def register_algorithm(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make ``cls`` the algorithm of ``cls.config_class`` (named by its ``algo_name``)."""
    name = cls.config_class.algo_name
    if name in _ALGORITHMS and _ALGORITHMS[name] is not cls:
        raise ValueError(f"an algorithm named {name!r} is already registered ({_ALGORITHMS[name].__name__})")
    _ALGORITHMS[name] = cls
    return cls


def registered_algorithms() -> dict[str, type[Algorithm]]:
    """Name -> algorithm class, for every algorithm folder in this package (sorted by name)."""
    global _discovered
    if not _discovered:
        for module in pkgutil.iter_modules(__path__):
            if module.ispkg:
                importlib.import_module(f"{__name__}.{module.name}")
        _discovered = True
    return dict(sorted(_ALGORITHMS.items()))


def config_classes() -> dict[str, type[BaseConfig]]:
    """Name -> config class of every registered algorithm."""
    return {name: cls.config_class for name, cls in registered_algorithms().items()}


def algorithm_class(name_or_config: str | BaseConfig) -> type[Algorithm]:
    """The algorithm class registered under a name, or for a config's type."""
    algorithms = registered_algorithms()
    if not isinstance(name_or_config, BaseConfig):
        if not isinstance(name_or_config, str) or name_or_config not in algorithms:
            raise ConfigError(f"algo must be one of {sorted(algorithms)}, got {name_or_config!r}")
        return algorithms[name_or_config]
    for cls in algorithms.values():
        if type(name_or_config) is cls.config_class:
            return cls
    raise TypeError(f"no algorithm registered for config type {type(name_or_config).__name__}")


def make_algorithm(config: BaseConfig, network: Network) -> Algorithm:
    """The algorithm that ``config``'s type belongs to, bound to ``network``."""
    return algorithm_class(config)(config, network)


def config_from_dict(values: dict[str, Any]) -> BaseConfig:
    """Build a config from a dict with an ``algo`` key (a registered algorithm's name).

    Unknown keys raise :class:`ConfigError` listing the valid ones; fields the class retired
    are dropped with a warning (:meth:`~purejaxrl_ppo.core.config.BaseConfig.upgrade_dict`).
    """
    values = dict(values)
    algo = values.pop("algo", None)
    cls = algorithm_class(algo).config_class
    values = cls.upgrade_dict(values)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {algo} config field(s) {unknown}; valid fields: {sorted(names)}")
    return cls(**values)  # the field checks turn lists (hidden_sizes from JSON/YAML) into tuples


__all__ = [
    "Algorithm",
    "algorithm_class",
    "config_classes",
    "config_from_dict",
    "make_algorithm",
    "minibatch_epochs",
    "normalize",
    "register_algorithm",
    "registered_algorithms",
]
