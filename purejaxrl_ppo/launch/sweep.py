"""Hyperparameter sweeps × seeds in one compiled program.

Numeric hyperparameters are pytree leaves of the config (``HYPERPARAMETERS`` of
each config class), so a grid of their values can be stacked into one batched
config and ``vmap``-ed together with the seeds:

>>> import purejaxrl_ppo as pjp
>>> result = pjp.sweep(pjp.PPOConfig(), {"clip_eps": [0.1, 0.2, 0.3]}, num_seeds=64)
>>> result.axes
('clip_eps', 'seed', 'update')
>>> result.metrics["episode_return"].shape      # [3, 64, num_updates]
>>> result.sel(clip_eps=0.2)["episode_return"]  # [64, num_updates]

Several fields sweep their Cartesian product, one axis each, in the order given.
Every value is validated by building the config it describes (so a bad value
raises :class:`~purejaxrl_ppo.core.config.ConfigError` naming it), and structural
fields (sizes, names, flags: anything that changes shapes or the program) are
refused: sweep those with one ``sweep`` call per value.

Seed ``i`` uses the same key for every swept value (common random numbers), the
key a single run gets from ``jax.random.split(jax.random.PRNGKey(seed), num_seeds)[i]``,
so ``sel(clip_eps=v)`` equals ``num_seeds`` runs configured with ``clip_eps=v`` alone.

The seed axis is sharded over the devices like every other multi-seed program
(:class:`~purejaxrl_ppo.launch.layout.SeedLayout`; ``devices``), and the program comes
from the shared compile cache (:func:`~purejaxrl_ppo.launch.programs.sweep_program`).

The same grid also trains in chunks, durably, in a run directory (``python -m purejaxrl_ppo sweep``;
:func:`~purejaxrl_ppo.driver.control.train_durable` with ``kind="sweep"``): :func:`grid_programs` gives the
chunked runner the grid's programs (:class:`~purejaxrl_ppo.launch.programs.GridPrograms`), the same
per-point, per-seed computation as :func:`sweep`, so each point's metrics equal :func:`sweep`'s bit for bit
(``tests/launch/test_sweep_cli.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.core.envs import make_env
from purejaxrl_ppo.launch.layout import SeedLayout, gather_seeds, seed_layout, spans_processes
from purejaxrl_ppo.launch.programs import GridPrograms, sweep_program


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Metrics of a sweep with named axes.

    metrics: name -> NumPy array shaped ``[*(len(v) for v in coords of swept fields), seed, update]``
    axes:    the axis names, e.g. ``("clip_eps", "seed", "update")``
    coords:  axis name -> coordinate values (seed indices for ``"seed"``,
             0-based update indices for ``"update"``)
    config:  the base config (its swept fields hold the base values, not the swept ones)
    seconds: wall time of compile + run (seconds, one float)
    """

    metrics: dict[str, np.ndarray]
    axes: tuple[str, ...]
    coords: dict[str, np.ndarray]
    config: BaseConfig
    seconds: float

    @property
    def swept(self) -> tuple[str, ...]:
        """The swept field names (every axis but ``seed`` and ``update``)."""
        return self.axes[:-2]

    def config_at(self, **values: float) -> BaseConfig:
        """The (validated) single-run config of one grid point, e.g. ``config_at(clip_eps=0.2)``."""
        return self.config.replace(**values)

    def sel(self, **values: float) -> dict[str, np.ndarray]:
        """Metrics at the given coordinates of swept axes (exact match), those axes dropped."""
        index: list[Any] = [slice(None)] * len(self.axes)
        for name, value in values.items():
            if name not in self.swept:
                raise KeyError(f"{name!r} is not a swept axis; swept axes: {self.swept}")
            matches = np.flatnonzero(np.isclose(self.coords[name], value, rtol=1e-6, atol=0.0))
            if matches.size != 1:
                raise KeyError(f"{name}={value!r} not in the swept values {self.coords[name].tolist()}")
            index[self.axes.index(name)] = int(matches[0])
        return {k: v[tuple(index)] for k, v in self.metrics.items()}

    def points(self) -> list[dict[str, float]]:
        """Every grid point as ``{field: value}``, in C order of the swept axes."""
        names = self.swept
        return [dict(zip(names, map(float, combo))) for combo in itertools.product(*(self.coords[n] for n in names))]


def _check_sweepable(config: BaseConfig, grid: Mapping[str, Sequence[float]]) -> None:
    fields = {f.name for f in dataclasses.fields(config)}
    sweepable = type(config).HYPERPARAMETERS
    for name, values in grid.items():
        if name not in fields:
            raise ConfigError(f"cannot sweep {name!r}: not a {type(config).__name__} field; sweepable: {sweepable}")
        if name not in sweepable:
            raise ConfigError(
                f"cannot sweep {name!r}: it is structural (static: it changes shapes or the compiled program); "
                f"run one sweep per value instead. Sweepable numeric fields of {type(config).__name__}: {sweepable}"
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) and not isinstance(values, np.ndarray):
            raise ConfigError(f"sweep values for {name!r} must be a sequence of numbers, got {values!r}")
        if len(values) == 0:
            raise ConfigError(f"sweep values for {name!r} are empty")
        for value in values:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"sweep values for {name!r} must be numbers, got {value!r}")
        if len(set(map(float, values))) != len(values):
            raise ConfigError(f"sweep values for {name!r} contain duplicates: {list(values)}")


def check_grid(config: BaseConfig, grid: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """``grid`` checked against ``config`` (sweepable fields, non-empty, no duplicates, every value valid for the
    config) with its values as Python floats, fields in the order given. Raises a one-line ``ConfigError``."""
    grid = dict(grid)
    _check_sweepable(config, grid)
    checked = {name: [float(v) for v in values] for name, values in grid.items()}
    grid_configs(config, checked)  # validates every value through the config
    return checked


def grid_settings(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every grid point as ``{field: value}``, in C order of the fields (the order of the points axis)."""
    names = tuple(grid)
    return [dict(zip(names, map(float, combo))) for combo in itertools.product(*(grid[n] for n in names))]


def grid_configs(config: BaseConfig, grid: Mapping[str, Sequence[float]]) -> list[BaseConfig]:
    """The validated single-run config of every grid point, in :func:`grid_settings` order."""
    return [config.replace(**setting) for setting in grid_settings(grid)]


def setting_label(setting: Mapping[str, float]) -> str:
    """``"clip_eps=0.1,ent_coef=0.01"``: a grid point's fields and values (shortest round-trip floats)."""
    return ",".join(f"{name}={float(value)!r}" for name, value in setting.items())


def grid_programs(config: BaseConfig, grid: Mapping[str, Sequence[float]], layout: SeedLayout) -> GridPrograms:
    """The chunked programs of ``grid`` × the layout's seeds (:class:`~purejaxrl_ppo.launch.programs.GridPrograms`)."""
    configs = grid_configs(config, check_grid(config, grid))
    make_env(config.env_name)  # outside the trace: see sweep()
    return GridPrograms(config, layout, stack_configs(configs), len(configs))


def stack_configs(configs: Sequence[BaseConfig]) -> BaseConfig:
    """One batched config whose numeric leaves are ``[len(configs)]`` float32 arrays.

    Every config must share the same structural (static) fields.
    """
    treedefs = {jax.tree_util.tree_structure(c) for c in configs}
    if len(treedefs) != 1:
        raise ConfigError("configs to stack differ in structural fields; only numeric hyperparameters may vary")
    return jax.tree_util.tree_map(lambda *xs: jnp.asarray(xs, jnp.float32), *configs)


def sweep(
    config: BaseConfig,
    grid: Mapping[str, Sequence[float]] | None = None,
    num_seeds: int = 1,
    seed: int = 0,
    devices: Sequence[jax.Device] | None = None,
) -> SweepResult:
    """Train every point of ``grid`` × ``num_seeds`` seeds of ``config`` in one compile.

    Args:
      config: the base configuration (its structural fields are shared by all runs).
      grid: numeric field -> values, e.g. ``{"clip_eps": [0.1, 0.2, 0.3]}``; several
        fields sweep their Cartesian product; empty or ``None`` runs seeds only.
      num_seeds: seeds per grid point.
      seed: root seed; seed ``i``'s key is ``split(PRNGKey(seed), num_seeds)[i]``.
      devices: the devices the seeds are split over (default: every device of every process; with
        ``jax.distributed`` every process gets the whole result).

    Returns a :class:`SweepResult` with metrics ``[*grid sizes, num_seeds, num_updates]``.
    """
    grid = check_grid(config, grid or {})
    if not isinstance(num_seeds, int) or num_seeds < 1:
        raise ConfigError(f"num_seeds must be a positive integer, got {num_seeds!r}")
    # Build (and cache) the environment outside the trace: make_env is memoised, and an env built
    # during tracing would cache its tracer-valued parameters for later calls.
    make_env(config.env_name)
    names = tuple(grid)
    stacked = stack_configs(grid_configs(config, grid))
    layout = seed_layout(num_seeds, devices)
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)

    start = time.perf_counter()
    metrics = sweep_program(config, layout)(layout.put(keys), stacked)
    metrics = gather_seeds(metrics) if spans_processes(layout.mesh) else jax.device_get(metrics)
    metrics = {k: np.asarray(v)[:, :num_seeds] for k, v in metrics.items()}
    seconds = time.perf_counter() - start

    shape = tuple(len(grid[n]) for n in names)
    metrics = {k: np.asarray(v).reshape(shape + np.shape(v)[1:]) for k, v in metrics.items()}
    coords = {n: np.asarray(grid[n], np.float64) for n in names}
    coords["seed"] = np.arange(num_seeds)
    coords["update"] = np.arange(config.num_updates)
    return SweepResult(metrics, names + ("seed", "update"), coords, config, seconds)
