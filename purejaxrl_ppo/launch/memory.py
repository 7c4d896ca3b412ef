"""A lower bound on the memory a run needs, from its abstract state, checked before anything is written.

The CLI calls :func:`require_fits` with :func:`train_estimate` (``train``, ``sweep``) or :func:`rlhf_estimate`
(``rlhf``) before it creates the run directory or compiles, so a size that cannot fit is refused in one line
naming the estimate and the memory there is, instead of an out-of-memory traceback after compiling.

Every number is the size in bytes of a ``jax.eval_shape`` tree (shapes and dtypes only: nothing is
allocated, computed or compiled) of arrays that the program must hold *at the same moment*:

* ``train``/``sweep``, right after a rollout: every seed's :class:`~purejaxrl_ppo.core.types.TrainState`
  (parameters, optimiser state, the ``num_envs`` environment states, the normaliser) and the rollout
  buffers of the seeds vmapped together: the ``[num_steps, num_envs]`` arrays of the
  :class:`~purejaxrl_ppo.core.types.Transition` that every iteration reads (``obs``, ``final_obs``,
  ``log_prob``, ``value``, ``reward``, ``terminated``, ``done``, ``episode_start``; the actions, the env's
  ``info`` and a recurrent network's ``carry`` are left out). An algorithm with its own iteration counts
  its state alone. A sweep counts every grid point.
* ``rlhf``: the largest of its stages: SFT (the language model and its Adam moments), the reward model
  (likewise) and RL (each seed's :class:`~purejaxrl_ppo.core.rlhf.rl.RLState` with the reference and
  reward models; the main group's seeds, not a sweep's).

Not counted, so the real peak is higher: XLA's temporaries (activations, gradients, minibatches, the
normalised copy of the observations), evaluation episodes, the compiled programs and Python itself.
The estimate is therefore a lower bound, and a run is refused only when that lower bound exceeds the
memory there is, so no run that could finish is refused:

* on a CPU, the host's RAM plus swap (``/proc/meminfo``, else ``os.sysconf``), shared by its devices;
* on an accelerator, each device's allocator limit (``device.memory_stats()["bytes_limit"]``); where a
  backend reports none, nothing is checked.

Seeds are spread over every device of every process, so the busiest device holds
``ceil(seeds / devices)`` of them (:mod:`purejaxrl_ppo.launch.layout`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxrl_ppo.core.config import BaseConfig, ConfigError


Parts = tuple[tuple[str, int], ...]  # ((what, bytes), ...)


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """A lower bound on a run's memory, as ``((what, bytes), ...)`` parts held at the same moment.

    device_parts: on the busiest device (what an accelerator's memory must hold);
    host_parts:   on all of this process's devices together (what a CPU host's RAM must hold).
    """

    device_parts: Parts
    host_parts: Parts

    @property
    def per_device(self) -> int:
        """Bytes on the busiest device."""
        return sum(size for _, size in self.device_parts)

    @property
    def host_total(self) -> int:
        """Bytes on all of this process's devices."""
        return sum(size for _, size in self.host_parts)


def describe(parts: Parts) -> str:
    """``"4 seed(s)' train state 1.2 GB + 4 seed(s)' rollout buffers 3.4 GB"``."""
    return " + ".join(f"{what} {format_bytes(size)}" for what, size in parts)


def format_bytes(size: float) -> str:
    """``size`` bytes in decimal units: ``"115.3 GB"``, ``"12.0 MB"``, ``"512 B"``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def tree_bytes(tree: Any) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) leaf of ``tree``; typed PRNG keys count 0 (a few bytes each:
    the total stays a lower bound)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return sum(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in leaves
               if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key))


# ---------------------------------------------------------------------------- train and sweep
def seed_state_bytes(config: BaseConfig) -> tuple[int, int]:
    """``(train state, rollout buffers)`` bytes of one seed of ``config`` (see the module docstring).

    The rollout buffers are read off the abstract state, so no env step is traced: ``num_steps`` times the
    runner's observation tree twice (``obs``, ``final_obs``), its ``[num_envs]`` bool ``episode_start`` three times
    (``terminated``, ``done``, ``episode_start``) and three ``[num_envs]`` float32 arrays (``log_prob``,
    ``value``, ``reward``). 0 for an algorithm that overrides the default iteration.
    """
    from purejaxrl_ppo.core.algos.base import Algorithm
    from purejaxrl_ppo.core.loop import components, init_train_state

    _, _, algo = components(config)
    state = jax.eval_shape(lambda: init_train_state(config, jax.random.PRNGKey(0)))
    if type(algo).iteration is not Algorithm.iteration:
        return tree_bytes(state), 0
    runner = state.runner
    num_envs = runner.episode_start.shape[0]
    floats = 3 * num_envs * np.dtype(np.float32).itemsize
    step = 2 * tree_bytes(runner.obs) + 3 * tree_bytes(runner.episode_start) + floats
    return tree_bytes(state), config.num_steps * step


def train_estimate(config: BaseConfig, num_seeds: int, num_devices: int, local_devices: int,
                   seeds_per_batch: int = 0, num_points: int = 1) -> MemoryEstimate:
    """The lower bound of ``num_seeds`` seeds of ``config`` (``num_points`` grid points each: a sweep) spread over
    ``num_devices`` devices, ``local_devices`` of them in this process; ``seeds_per_batch`` > 0: the seeds a
    device vmaps at once (their rollout buffers alone exist together)."""
    state, rollout = seed_state_bytes(config)
    on_device = -(-num_seeds // num_devices)
    together = min(on_device, seeds_per_batch) if seeds_per_batch > 0 else on_device

    def parts(devices: int) -> Parts:
        held = ((on_device, state, "train state"), (together, rollout, "rollout buffers"))
        return tuple((f"{devices * n * num_points} seed(s)' {what}", devices * n * num_points * size)
                     for n, size, what in held if size)

    return MemoryEstimate(parts(1), parts(local_devices))


# ---------------------------------------------------------------------------- rlhf
def rlhf_estimate(cfg: Any, num_seeds: int, num_devices: int, local_devices: int, train_sft: bool = True,
                  train_rm: bool = True) -> MemoryEstimate:
    """The lower bound of an ``rlhf`` run of ``cfg`` (an :class:`~purejaxrl_ppo.core.rlhf.config.RLHFConfig`):
    its largest stage. SFT and the reward model (left out where reused: ``train_sft``/``train_rm`` False) train
    on one device; RL spreads ``num_seeds`` seeds over ``num_devices`` devices (``local_devices`` in this process)
    and also holds the reference and reward models."""
    from purejaxrl_ppo.core.rlhf import model, rl, stages

    key = jax.random.PRNGKey(0)

    def with_optimizer(init) -> int:  # a model and the state of the optimiser SFT and the reward model use
        def build():
            params = init(key, cfg)
            return params, stages.make_optimizer(1e-3).init(params)

        return tree_bytes(jax.eval_shape(build))

    models = tree_bytes(jax.eval_shape(lambda: (model.init_lm(key, cfg), model.init_scalar_model(key, cfg))))
    seed = tree_bytes(jax.eval_shape(lambda: rl.rl_init(cfg, model.init_lm(key, cfg),
                                                          model.init_scalar_model(key, cfg), key)))
    on_device = -(-num_seeds // num_devices)

    def rl_parts(devices: int) -> Parts:
        return ((f"{devices * on_device} seed(s)' RL state", devices * on_device * seed),
                ("reference and reward models", models))

    candidates = [(rl_parts(1), rl_parts(local_devices))]  # (on the busiest device, on the host) per stage
    if train_sft:
        sft = (("SFT model and optimiser state", with_optimizer(model.init_lm)),)
        candidates.append((sft, sft))
    if train_rm:
        rm = (("reward model and optimiser state", with_optimizer(model.init_scalar_model)),)
        candidates.append((rm, rm))

    def largest(parts: list[Parts]) -> Parts:
        return max(parts, key=lambda p: sum(size for _, size in p))

    return MemoryEstimate(largest([d for d, _ in candidates]), largest([h for _, h in candidates]))


# ---------------------------------------------------------------------------- what there is
def host_memory() -> int | None:
    """Bytes of RAM plus swap on this host (``/proc/meminfo``; else ``os.sysconf``: RAM alone); None if unknown.

    The total, not what is free now: memory other programs hold may be freed or swapped out."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return sum(int(fields[name].split()[0]) * 1024 for name in ("MemTotal", "SwapTotal"))
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def device_memory(device: Any) -> int | None:
    """The allocator limit of an accelerator ``device`` in bytes (``memory_stats()["bytes_limit"]``), or None."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - a backend without statistics: nothing to check against
        return None
    limit = (stats or {}).get("bytes_limit")
    return int(limit) if limit else None


def require_fits(estimate: MemoryEstimate, hint: str, devices: list[Any] | None = None) -> None:
    """Raise a one-line :class:`ConfigError` when ``estimate`` (a lower bound) exceeds the memory there is.

    ``devices``: this process's devices (default ``jax.local_devices()``); on a CPU their host's RAM and swap
    must hold ``estimate.host_total``, on an accelerator each device must hold ``estimate.per_device``.
    ``hint`` ends the message (what to lower). Nothing is checked where the memory is unknown.
    """
    devices = jax.local_devices() if devices is None else devices
    if devices[0].platform == "cpu":
        need, parts, have, where = estimate.host_total, estimate.host_parts, host_memory(), "this host's RAM and swap"
    else:
        limits = [device_memory(d) for d in devices]
        need, parts, have = estimate.per_device, estimate.device_parts, None if None in limits else min(limits)
        where = f"one {devices[0].device_kind}"
    if have is None or need <= have:
        return
    raise ConfigError(f"this run needs at least {format_bytes(need)} of memory ({describe(parts)}; a lower bound, "
                      f"see purejaxrl_ppo/launch/memory.py), but {where} has {format_bytes(have)}; {hint}")
