"""The RLHF programs on devices: the keys, the RL groups (the main run and each sweep setting) as chunked
programs over their rows, and the evaluator. The run around them (stages, run directory, checkpoints, files)
is :mod:`purejaxrl_ppo.driver.rlhf`; the device side of each step is :mod:`purejaxrl_ppo.core.rlhf`.

**Seeds and keys.** RL seed ``i`` starts from ``jax.random.split(PRNGKey(seed), num_seeds)[i]`` (the same
keys in every sweep setting: common random numbers); SFT and the reward model use
``fold_in(PRNGKey(seed), crc32(b"sft" / b"rm"))``. Every evaluation uses the same ``cfg.eval_size`` prompts
and sampling key (:func:`evaluation_key`, independent of ``seed``), so before/after and run/run
differences are not sampling noise of the prompts.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import zlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.rlhf import generate, rl
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.core.rlhf.task import Task, gold_score, sample_prompts
from purejaxrl_ppo.launch.layout import SeedLayout, seed_layout

Params = dict

#: Held-out prompts shown in ``samples.md`` (the first of the evaluation prompts).
NUM_SAMPLES = 8


# ----------------------------------------------------------------------------- keys
def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """``[num_seeds, 2] uint32``: RL seed i's key, ``jax.random.split(PRNGKey(seed), num_seeds)[i]``."""
    return jax.random.split(jax.random.PRNGKey(seed), num_seeds)


def stage_key(seed: int, stage: str) -> jax.Array:
    """The key of stage ``"sft"`` or ``"rm"``: ``fold_in(PRNGKey(seed), crc32(stage))`` (a stream no RL seed uses)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(stage.encode()))


def evaluation_key() -> jax.Array:
    """The one key of every evaluation (prompts and sampling), independent of the run's seed."""
    return jax.random.fold_in(jax.random.PRNGKey(0), zlib.crc32(b"evaluate"))


# ----------------------------------------------------------------------------- groups
@dataclasses.dataclass(frozen=True)
class RLGroup:
    """One compiled RL program's rows: a config, β per row and the seed index of each row.

    The main run has ``num_seeds`` rows with ``cfg.kl_coef``; a PPO β sweep has β × seeds rows; a TRPO δ
    sweep setting has ``num_seeds`` rows of ``cfg.replace(algo="trpo", max_kl=δ)``.
    """

    name: str
    cfg: RLHFConfig
    kl_coefs: tuple[float, ...]
    seeds: tuple[int, ...]

    @property
    def rows(self) -> int:
        return len(self.seeds)


def rl_groups(cfg: RLHFConfig, num_seeds: int, sweep_kl_coefs: tuple[float, ...] = (),
              sweep_max_kls: tuple[float, ...] = ()) -> list[RLGroup]:
    """The main run's group (``"main"``), then the PPO β sweep's (``"ppo"``, if any), then one per TRPO δ
    (``"trpo-max_kl-<δ>"``)."""
    seeds = tuple(range(num_seeds))
    groups = [RLGroup("main", cfg, (cfg.kl_coef,) * num_seeds, seeds)]
    if sweep_kl_coefs:
        groups.append(RLGroup("ppo", cfg.replace(algo="ppo"), tuple(b for b in sweep_kl_coefs for _ in seeds),
                              seeds * len(sweep_kl_coefs)))
    for delta in sweep_max_kls:
        groups.append(RLGroup(f"trpo-max_kl-{delta:g}", cfg.replace(algo="trpo", max_kl=delta),
                              (cfg.kl_coef,) * num_seeds, seeds))
    return groups


def setting_label(cfg: RLHFConfig, kl_coef: float) -> str:
    """A setting's legend label: ``PPO β=0.05``, ``TRPO δ=0.02, β=0.05`` (`` (adaptive)`` with an adaptive β)."""
    beta = f"β={kl_coef:g}" + (" (adaptive)" if cfg.adaptive_kl else "")
    return f"PPO {beta}" if cfg.algo == "ppo" else f"TRPO δ={cfg.max_kl:g}, {beta}"


def group_label(group: RLGroup) -> str:
    """A group's label in progress lines: its setting's, or the β values of a PPO β sweep."""
    if group.name == "main":
        return setting_label(group.cfg, group.cfg.kl_coef)
    if group.cfg.algo == "ppo" and len(set(group.kl_coefs)) > 1:
        return "PPO β sweep (" + ", ".join(f"{b:g}" for b in dict.fromkeys(group.kl_coefs)) + ")"
    return setting_label(group.cfg, group.kl_coefs[0])


# ----------------------------------------------------------------------------- evaluation
def _evaluate_one(cfg: RLHFConfig, num_samples: int, policy: Params, task: Task, ref_params: Params,
                  rm_params: Params, prompts: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    """One policy: :func:`~purejaxrl_ppo.core.rlhf.rl.evaluate`'s scalars over ``prompts [n, P]``, plus the
    first ``num_samples`` responses (the same ones it scored: same key and batch) ``[k, L]`` and their
    ``sample_gold``, ``sample_proxy`` ``[k]``."""
    scores = rl.evaluate(cfg, task, policy, ref_params, rm_params, prompts, key)
    responses = generate.sample(policy, cfg, prompts, key, cfg.temperature).responses[:num_samples]
    shown = prompts[:num_samples]
    return {**scores, "sample_responses": responses, "sample_gold": gold_score(task, cfg, shown, responses),
            "sample_proxy": generate.sequence_scores(rm_params, cfg, shown, responses)}


class Evaluator:
    """Evaluates a batch of policies ``[rows, ...]`` on the fixed held-out prompts; one program per layout."""

    def __init__(self, cfg: RLHFConfig, task: Task, ref_params: Params, rm_params: Params):
        prompt_key, self.key = jax.random.split(evaluation_key())
        self.prompts = sample_prompts(task, cfg, prompt_key, cfg.eval_size)  # [eval_size, P]
        self.cfg, self.shared = cfg, (task, ref_params, rm_params, self.prompts, self.key)
        self.num_samples = min(NUM_SAMPLES, cfg.eval_size)
        self.programs: dict[tuple[int, int], Any] = {}
        self.compile_seconds = self.run_seconds = 0.0

    def __call__(self, layout: SeedLayout, policies: Params) -> dict[str, np.ndarray]:
        """``policies``: params with leaves ``[padded rows, ...]`` placed by ``layout`` -> ``{name: [rows, ...]}``."""
        slot = (layout.num_seeds, layout.padded_seeds)
        if slot not in self.programs:
            start = time.perf_counter()
            mapped = layout.map(functools.partial(_evaluate_one, self.cfg, self.num_samples))
            self.programs[slot] = mapped.lower(policies, *self.shared).compile()
            self.compile_seconds += time.perf_counter() - start
        start = time.perf_counter()
        out = jax.device_get(layout.take(self.programs[slot](policies, *self.shared)))
        self.run_seconds += time.perf_counter() - start
        return {k: np.asarray(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- RL in chunks
def _init_rows(cfg: RLHFConfig, ref_params: Params, rm_params: Params, keys: jax.Array, kl_coefs: jax.Array):
    return jax.vmap(lambda k, b: rl.rl_init(cfg, ref_params, rm_params, k, kl_coef=b))(keys, kl_coefs)


def _chunk_one(cfg: RLHFConfig, num_iterations: int, state: rl.RLState, task: Task, ref_params: Params,
               rm_params: Params):
    return rl.rl_chunk(cfg, task, ref_params, rm_params, state, num_iterations)


def iteration_plan(num_iterations: int, chunk_iterations: int) -> list[int]:
    """Chunk sizes: ``chunk_iterations`` each and one remainder (at most two programs to compile)."""
    size = min(chunk_iterations, num_iterations) or 1
    return [size] * (num_iterations // size) + ([num_iterations % size] if num_iterations % size else [])


@dataclasses.dataclass
class RLGroupPrograms:
    """One RL group's compiled programs over its rows (:class:`~purejaxrl_ppo.launch.chunked.Programs`, run by
    :func:`~purejaxrl_ppo.launch.chunked.run_chunks`): states :class:`~purejaxrl_ppo.core.rlhf.rl.RLState`
    ``[rows, ...]`` placed by :attr:`layout`, metrics ``{name: [rows, iterations]}``.

    Row ``r`` starts from RL seed ``group.seeds[r]``'s key (:func:`seed_keys`) with ``β = group.kl_coefs[r]``.
    """

    group: RLGroup
    task: Task
    ref_params: Params
    rm_params: Params
    seed: int
    layout: SeedLayout = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.layout = seed_layout(self.group.rows)
        self._init = jax.jit(functools.partial(_init_rows, self.group.cfg))
        self._chunks: dict[int, Any] = {}

    def _init_args(self) -> tuple[Any, ...]:
        keys = seed_keys(self.seed, max(self.group.seeds) + 1)[jnp.asarray(self.group.seeds)]
        return self.ref_params, self.rm_params, keys, jnp.asarray(self.group.kl_coefs, jnp.float32)

    def abstract_state(self) -> Any:
        """``ShapeDtypeStruct`` tree of the ``[rows, ...]`` state (to restore a checkpoint into)."""
        return jax.eval_shape(self._init, *self._init_args())

    def init(self) -> rl.RLState:
        """Fresh states of every row, placed."""
        return self.layout.put(self._init(*self._init_args()))

    def compile(self, sizes: Sequence[int], fresh: bool) -> None:
        """Compile the chunk program of each of ``sizes`` iterations (the init program compiles on first use)."""
        placed = self.layout.abstract(self.abstract_state())
        for size in sizes:
            if size not in self._chunks:
                mapped = self.layout.map(functools.partial(_chunk_one, self.group.cfg, size), donate=True)
                self._chunks[size] = mapped.lower(placed, self.task, self.ref_params, self.rm_params).compile()

    def chunk(self, size: int, state: rl.RLState, first_update: int) -> tuple[rl.RLState, dict[str, Any]]:
        """``size`` iterations of the placed ``state`` (donated)."""
        return self._chunks[size](state, self.task, self.ref_params, self.rm_params)

    def put(self, state: Any) -> Any:
        return self.layout.put(state)

    def take(self, tree: Any) -> Any:
        return self.layout.take(tree)

    def host(self, tree: Any) -> Any:
        return {k: np.asarray(v) for k, v in jax.device_get(self.layout.take(tree)).items()}
