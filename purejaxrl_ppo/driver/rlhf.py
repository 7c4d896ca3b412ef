"""``python -m purejaxrl_ppo rlhf`` as a client of the durable-run driver: three stages in a run directory,
resumable.

:func:`run_rlhf` runs SFT → reward model → RL (PPO or TRPO with a KL penalty to the SFT reference;
the device side is :mod:`purejaxrl_ppo.core.rlhf`, the programs :mod:`purejaxrl_ppo.launch.rlhf`) through
the driver (:mod:`purejaxrl_ppo.driver.run`): SFT and the reward model are one-shot stages
(:func:`~purejaxrl_ppo.driver.run.output_stage`), each RL group (the main run, each sweep setting) a chunked
stage (:func:`~purejaxrl_ppo.driver.run.run_chunked_stage`) with checkpoints, as ``train``'s run is. It writes::

    <out>/
      config.json, run.json      the RLHFConfig; the run options, versions, machine, every command line
      sft/params.msgpack         stage 1: the SFT language model (flax.serialization msgpack)
      sft/metrics.json           held-out loss, the base distribution's entropy (its floor), loss curve, timings
      sft/checksums.json         written last: the SHA-256 of both (the stage is done)
      rm/params.msgpack          stage 2: the reward model (score normalised on the SFT policy)
      rm/metrics.json            held-out pair accuracy (labels, gold), loss/accuracy curves, timings
      rm/checksums.json          as sft/
      checkpoints/<iteration>/   stage 3: every seed's RLState and metric history (orbax, newest 3)
      metrics.csv, metrics_aggregate.csv, metrics.jsonl   RL metrics per iteration (written per chunk)
      metrics.npz                every RL metric [seeds, iterations] (+ ``responses``: responses generated)
      summary.json               stage results, before/after-RL evaluation (median over seeds), timings
      samples.md                 generations for fixed held-out prompts, before and after RL, scored
      rlhf_curves.png            proxy score, gold score, KL to reference over iterations (median, IQR)
      overoptimisation.png       gold and proxy score against KL: this run's trajectory and final points
      sweep.json, sweep_metrics.npz, sweep_checkpoints/   with sweep_kl_coefs / sweep_max_kls
      complete.json              written last: the final files' SHA-256 (the run is finished)

**Reuse.** ``sft_from=DIR`` takes ``DIR/sft`` instead of training SFT; ``rm_from=DIR`` takes ``DIR/rm`` *and*
``DIR/sft`` (the reward model's score is normalised on, and its value model initialised for, the policy it
was trained with), so ``sft_from`` may be omitted; given both, their SFT models must be the same file. The
source's config must agree on every field that shapes the model or the task (:data:`MODEL_FIELDS`, plus
``bt_scale`` and ``rm_norm_temperature`` for a reward model): a one-line :class:`ConfigError` otherwise. The
reused files are copied into the new run directory, so it is self-contained and can itself be reused.

**Seeds and keys**: :mod:`purejaxrl_ppo.launch.rlhf`.

**Sweeps.** ``sweep_kl_coefs`` trains PPO for every β (all β × seeds in one vmapped program: β is a leaf of
:class:`~purejaxrl_ppo.core.rlhf.rl.RLState`); ``sweep_max_kls`` trains TRPO for every δ (one program per
δ: ``max_kl`` is static config), each with the run's ``kl_coef``. Each setting's final evaluation is a
point of ``overoptimisation.png`` and an entry of ``sweep.json``.

**Resume** (``resume=True``): the finished stages are loaded from the run directory, RL continues from the
newest intact checkpoint of each group (damaged checkpoints quarantined; ``restart=True`` drops the RL
checkpoints and trains RL again from iteration 0); the chunked programs are the same, so the metrics equal the
uninterrupted run's bit for bit, killed at any point (``tests/driver/test_rlhf_faults.py``). A stage is reused
only when its files match its manifest (``<stage>/checksums.json``, written when the stage finishes), as a
checkpoint is: a damaged stage (or one without a manifest) is moved to ``corrupt_checkpoints/<stage>-<time>`` with a
:class:`~purejaxrl_ppo.runs.checkpoint.CorruptCheckpointWarning` and computed again (trained with the
same key, or copied again from ``sft_from``/``rm_from``), never silently reused.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.analysis.rlhf_plots import SweepPoint, plot_overoptimisation, plot_rlhf_curves
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.core.rlhf import model, stages
from purejaxrl_ppo.core.rlhf.config import EOS, NUM_SPECIAL_TOKENS, PAD, RLHFConfig
from purejaxrl_ppo.core.rlhf.task import Task, make_task
from purejaxrl_ppo.driver import run as driver
from purejaxrl_ppo.launch.chunked import ChunkReport, StartPoint
from purejaxrl_ppo.launch.layout import SeedLayout, seed_layout
from purejaxrl_ppo.launch.rlhf import Evaluator, RLGroup, RLGroupPrograms, group_label, iteration_plan, rl_groups, \
    setting_label, stage_key
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs import sinks as log_sinks
from purejaxrl_ppo.runs.checkpoint import CHECKSUMS, CheckpointError, verify_manifest
from purejaxrl_ppo.runs.provenance import machine_description, versions
from purejaxrl_ppo.runs.rundir import RunDirError
from purejaxrl_ppo.runs.run_files import saved_run_kind

Params = dict

#: Fields that change the model's shape or the task: a reused SFT model must agree on all of them.
MODEL_FIELDS = ("vocab_size", "prompt_len", "response_len", "d_model", "num_layers", "num_heads", "mlp_ratio",
                "task_seed", "task_positive", "task_negative", "task_repeat_penalty", "base_mean_length")
#: A reused reward model must also agree on the preference labels' noise and on the samples it is normalised on.
RM_FIELDS = (*MODEL_FIELDS, "bt_scale", "rm_norm_temperature")
#: Run options (not config fields) and their defaults (the CLI's ``None`` means "not given").
OPTION_DEFAULTS = {"num_seeds": 4, "seed": 0, "chunk_iterations": 10, "sweep_kl_coefs": (), "sweep_max_kls": (),
                   "sft_from": None, "rm_from": None}
#: Iterations kept by the checkpointer (the newest K).
KEEP_CHECKPOINTS = 3
PARAMS_FILE, STAGE_METRICS_FILE = "params.msgpack", "metrics.json"
CONFIG_JSON = "config.json"
#: The one-shot stages, in order (each in ``<out>/<stage>/``).
STAGES = ("sft", "rm")
#: The per-iteration metrics the progress line and the plots use.
HEADLINE = ("proxy_score", "gold_score", "kl_to_reference")


# ----------------------------------------------------------------------------- reports
@dataclasses.dataclass(frozen=True)
class RLProgress:
    """What ``on_progress`` sees after each compiled chunk of RL iterations (host NumPy arrays).

    group: ``"main"`` or a sweep setting's name; label: its legend label; iterations_done / total_iterations;
    chunk_metrics: ``{name: [rows, chunk]}`` of this chunk; metrics: ``{name: [rows, iterations_done]}``;
    run_seconds / compile_seconds: this group's, in this process (run: inside the compiled chunks, the checkpoints
    and logs between them excluded); rows: seeds (× β of a PPO sweep).
    """

    group: str
    label: str
    iterations_done: int
    total_iterations: int
    chunk_metrics: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    run_seconds: float
    compile_seconds: float


# ----------------------------------------------------------------------------- options and reuse
def _check_options(num_seeds: Any, seed: Any, chunk_iterations: Any, sweep_kl_coefs: Any,
                   sweep_max_kls: Any) -> dict[str, Any]:
    def count(name: str, value: Any, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        return int(value)

    def numbers(name: str, values: Any, positive: bool) -> list[float]:
        values = [float(v) for v in values]
        bad = [v for v in values if not np.isfinite(v) or (v <= 0 if positive else v < 0)]
        if bad:
            raise ConfigError(f"{name} must be {'positive' if positive else 'non-negative'} numbers, got {bad[0]!r}")
        return values

    return {"num_seeds": count("num_seeds", num_seeds, 1), "seed": count("seed", seed, 0),
            "chunk_iterations": count("chunk_iterations", chunk_iterations, 1),
            "sweep_kl_coefs": numbers("sweep_kl_coefs", sweep_kl_coefs, positive=False),
            "sweep_max_kls": numbers("sweep_max_kls", sweep_max_kls, positive=True)}


def _reusable_stage(source: Path, stage: str, cfg: RLHFConfig, fields: tuple[str, ...], flag: str) -> dict[str, Any]:
    """``{"params": bytes, "metrics": dict, "from": str}`` of ``source/stage``, checked against ``cfg`` and
    against the stage's manifest where it has one (runs written before manifests existed have none)."""
    params_path, metrics_path = source / stage / PARAMS_FILE, source / stage / STAGE_METRICS_FILE
    if not (source / CONFIG_JSON).is_file():
        raise ConfigError(f"{flag} {source}: not a run directory of `rlhf` (no {source / CONFIG_JSON})")
    if not (params_path.is_file() and metrics_path.is_file()):
        raise ConfigError(f"{flag} {source}: its {stage} stage did not finish (no {params_path} or {metrics_path})")
    if (source / stage / CHECKSUMS).is_file():
        try:
            verify_manifest(source / stage)
        except CheckpointError as err:
            raise ConfigError(f"{flag} {source}: its {stage} stage is damaged ({err}); it cannot be reused") from None
    # a field the source's version did not have yet took its default there
    saved = {**RLHFConfig().to_dict(), **json.loads((source / CONFIG_JSON).read_text())}
    differ = [f"{name} {saved[name]!r} there, {getattr(cfg, name)!r} here" for name in fields
              if saved[name] != getattr(cfg, name)]
    if differ:
        raise ConfigError(f"{flag} {source}: its {stage} model was trained for a different model or task ("
                          f"{'; '.join(differ)}); use the same values or drop {flag}")
    return {"params": params_path.read_bytes(), "metrics": json.loads(metrics_path.read_text()), "from": str(source)}


def reused_stages(cfg: RLHFConfig, sft_from: Path | None, rm_from: Path | None) -> dict[str, dict[str, Any]]:
    """The stages taken from earlier runs: ``{"sft": ..., "rm": ...}`` (either absent), checked (ConfigError)."""
    reused = {}
    if rm_from is not None:
        reused["rm"] = _reusable_stage(Path(rm_from), "rm", cfg, RM_FIELDS, "--rm-from")
        rm_sft = _reusable_stage(Path(rm_from), "sft", cfg, MODEL_FIELDS, "--rm-from")
        if sft_from is None:
            reused["sft"] = rm_sft
    if sft_from is not None:
        reused["sft"] = _reusable_stage(Path(sft_from), "sft", cfg, MODEL_FIELDS, "--sft-from")
        if rm_from is not None and reused["sft"]["params"] != rm_sft["params"]:
            raise ConfigError(f"--rm-from {rm_from}: its reward model was trained with a different SFT model than "
                              f"--sft-from {sft_from}; drop --sft-from (the SFT model of --rm-from is used)")
    return reused


# ----------------------------------------------------------------------------- params files
def load_params(data: bytes | Path, abstract: Any, what: str) -> Params:
    """Params read from msgpack bytes (or a file) into the structure, shapes and dtypes of ``abstract``."""
    from flax import serialization

    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        tree = serialization.msgpack_restore(raw)
    except Exception as err:  # noqa: BLE001 - any decoding failure means an unusable file
        raise ConfigError(f"{what} is not a params file ({type(err).__name__})") from None
    expected = jax.tree_util.tree_structure(abstract)
    if jax.tree_util.tree_structure(tree) != expected:
        raise ConfigError(f"{what} holds a different model (its parameter tree differs from this config's)")
    for leaf, spec in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(abstract)):
        if np.shape(leaf) != spec.shape or np.asarray(leaf).dtype != spec.dtype:
            raise ConfigError(f"{what} holds a different model (a parameter of shape {np.shape(leaf)}, "
                              f"this config's is {spec.shape})")
    return jax.tree_util.tree_map(jnp.asarray, tree)


# ----------------------------------------------------------------------------- stages 1 and 2
def _to_json(value: Any) -> Any:
    value = np.asarray(value)
    return value.tolist() if value.ndim else value.item()


def _describe_sft(raw: dict) -> dict:
    return {"heldout_loss": float(raw["heldout_loss"]), "base_entropy": float(raw["base_entropy"]),
            "loss": _to_json(raw["loss"])}


def _describe_rm(raw: dict) -> dict:
    scalars = ("heldout_accuracy", "heldout_gold_accuracy", "raw_score_mean", "raw_score_std")
    return {**{k: float(raw[k]) for k in scalars if k in raw}, "loss": _to_json(raw["loss"]),
            "accuracy": _to_json(raw["accuracy"])}


def _params_bytes(params: Params) -> bytes:
    from flax import serialization

    return serialization.msgpack_serialize(jax.device_get(params))


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()


def _run_stage(name: str, out: Path, abstract: Any, reused: dict[str, Any] | None, train: Callable, args: tuple,
               describe: Callable[[dict], dict], on_stage: Callable[[str, str], None]) -> tuple[Params, dict]:
    """One-shot stage ``name`` (:func:`~purejaxrl_ppo.driver.run.output_stage`): loaded from ``out/name`` (done
    before, its manifest verified), copied from ``reused``, or trained (compile, run) and saved.

    ``train`` is a jitted stage function and ``args`` its arguments; ``describe`` turns its metrics into the
    JSON written to ``out/name/metrics.json``. Returns the params and that JSON.
    """
    directory = out / name

    def load(directory: Path) -> tuple[Params, dict]:
        on_stage(name, "done earlier in this run directory; loaded")
        params_path = directory / PARAMS_FILE
        return (load_params(params_path, abstract, str(params_path)),
                json.loads((directory / STAGE_METRICS_FILE).read_text()))

    def produce() -> tuple[dict[str, bytes], tuple[Params, dict]]:
        if reused is not None:
            params = load_params(reused["params"], abstract, f"{reused['from']}/{name}/{PARAMS_FILE}")
            metrics = {**reused["metrics"], "reused_from": reused["from"]}
            on_stage(name, f"reused from {reused['from']}")
            return {PARAMS_FILE: reused["params"], STAGE_METRICS_FILE: _json_bytes(metrics)}, (params, metrics)
        on_stage(name, "compiling ...")
        start = time.perf_counter()
        compiled = train.lower(*args).compile()
        compile_seconds = time.perf_counter() - start
        on_stage(name, f"training ({compile_seconds:.1f} s to compile) ...")
        start = time.perf_counter()
        params, raw = jax.block_until_ready(compiled(*args[1:]))  # the config is static, not an argument
        run_seconds = time.perf_counter() - start
        metrics = {**describe(jax.device_get(raw)), "compile_seconds": compile_seconds, "run_seconds": run_seconds,
                   "reused_from": None}
        on_stage(name, f"done in {run_seconds:.1f} s")
        return {PARAMS_FILE: _params_bytes(params), STAGE_METRICS_FILE: _json_bytes(metrics)}, (params, metrics)

    return driver.output_stage(directory, load=load, produce=produce)[0]


def quarantine_damaged_stages(out: Path) -> list[str]:
    """Check each finished one-shot stage of ``out`` against its manifest; move a damaged one (or one without a
    manifest whose metrics file is there) to ``out/corrupt_checkpoints/<stage>-<time>``, to be computed again
    (:func:`~purejaxrl_ppo.driver.run.quarantine_damaged_outputs`). Returns the stages moved."""
    return driver.quarantine_damaged_outputs(out, STAGES, STAGE_METRICS_FILE)


# ----------------------------------------------------------------------------- stage 3: RL groups
@dataclasses.dataclass
class GroupResult:
    """A trained group: the final states (placed by ``layout``), metrics ``{name: [rows, iterations]}``, timings
    (summed over every process that worked on it) and the iterations this process ran."""

    group: RLGroup
    layout: SeedLayout
    states: Any
    metrics: dict[str, np.ndarray]
    compile_seconds: float
    run_seconds: float
    iterations_run: int
    tokens_per_second: float | None = None


def group_checkpoints(out: Path, group: RLGroup) -> Path:
    """Where a group's checkpoints go: the main run's in ``checkpoints/``, a sweep setting's in
    ``sweep_checkpoints/<group>/``."""
    return out / "checkpoints" if group.name == "main" else out / "sweep_checkpoints" / group.name


def train_group(group: RLGroup, task: Task, ref_params: Params, rm_params: Params, out: Path, *, seed: int,
                chunk_iterations: int, resume: bool, on_chunk: Callable[[RLProgress], None],
                on_stage: Callable[[str, str], None], open_sinks: Callable[[StartPoint | None], Any]) -> GroupResult:
    """RL for one group's rows, a chunked stage of the driver: chunks of ``chunk_iterations``, a checkpoint
    after each (:func:`group_checkpoints`).

    With ``resume``, continues from the newest intact checkpoint (its config, β, seeds and plan must match).
    ``on_chunk`` gets an :class:`RLProgress` after each chunk and its checkpoint; ``open_sinks(start)`` opens
    the group's logs (:func:`~purejaxrl_ppo.driver.run.run_chunked_stage`).
    """
    cfg = group.cfg
    programs = RLGroupPrograms(group, task, ref_params, rm_params, seed)
    plan = iteration_plan(cfg.num_iterations, chunk_iterations)
    meta = {"config": cfg.to_dict(), "group": group.name, "kl_coefs": list(group.kl_coefs),
            "seeds": list(group.seeds), "seed": seed, "plan": plan}
    checkpoints = group_checkpoints(out, group)
    stage = driver.ChunkedStage(
        name=f"rl:{group.name}", programs=programs, plan=plan, init=programs.init,
        abstract_state=programs.abstract_state(), meta=meta, checkpoints=checkpoints, keep=KEEP_CHECKPOINTS,
        repair=f"python -m purejaxrl_ppo rlhf --resume {out} --restart",
        quarantine=out / "corrupt_checkpoints" / ("" if group.name == "main" else group.name))
    saved = {"compile_seconds": 0.0, "run_seconds": 0.0}
    tokens = 0.0

    def on_start(start: StartPoint | None, timing: dict[str, Any] | None) -> None:
        if start is not None:
            saved.update(timing or {})
            on_stage(f"rl:{group.name}", f"resumed at iteration {start.updates_done}")

    def timing(report: ChunkReport) -> dict[str, float]:  # RL's run time: inside the chunks (as RLProgress's)
        return {"compile_seconds": saved["compile_seconds"] + report.compile_seconds,
                "run_seconds": saved["run_seconds"] + report.device_seconds}

    def after_chunk(report: ChunkReport) -> None:
        nonlocal tokens
        tokens += float(report.chunk_metrics["response_length"].sum()) * cfg.rollout_batch  # valid tokens, EOS incl.
        on_chunk(RLProgress(group.name, group_label(group), report.updates_done, cfg.num_iterations,
                            report.chunk_metrics, report.metrics, report.device_seconds, report.compile_seconds))

    done = driver.run_chunked_stage(
        stage, resume=resume, source=f"{out / CONFIG_JSON} / run.json", open_sinks=open_sinks, timing=timing,
        on_start=on_start, on_chunk=after_chunk,
        on_compile=lambda: on_stage(f"rl:{group.name}", f"compiling {', '.join(map(str, sorted(set(plan))))} "
                                                         "iterations ..."))
    chunks = done.chunks
    return GroupResult(group, programs.layout, programs.put(chunks.state), chunks.metrics,
                       saved["compile_seconds"] + chunks.compile_seconds, saved["run_seconds"] + chunks.device_seconds,
                       chunks.updates_run, tokens / chunks.device_seconds if chunks.device_seconds > 0 else None)


def group_points(result: GroupResult) -> list[tuple[str, RLHFConfig, float, np.ndarray]]:
    """The settings of a group: ``(label, cfg, β, row indices)`` (a PPO sweep has one per β)."""
    betas = np.asarray(result.group.kl_coefs)
    return [(setting_label(result.group.cfg, float(b)), result.group.cfg, float(b), np.flatnonzero(betas == b))
            for b in dict.fromkeys(result.group.kl_coefs)]


# ----------------------------------------------------------------------------- samples.md
def render_tokens(tokens: np.ndarray, sentiment: np.ndarray) -> str:
    """Tokens as text: content token t as a letter (2 -> a, 3 -> b, ...; ``t<id>`` past z) marked ``+``/``-``
    by the lexicon's sentiment, EOS as ``</s>``, PAD dropped."""
    words = []
    for t in np.asarray(tokens).tolist():
        if t == PAD:
            continue
        if t == EOS:
            words.append("</s>")
            continue
        c = t - NUM_SPECIAL_TOKENS
        word = chr(ord("a") + c) if c < 26 else f"t{t}"
        mark = sentiment[t]
        words.append(word + ("+" if mark > 0 else "-" if mark < 0 else ""))
    return " ".join(words)


def samples_markdown(prompts: np.ndarray, before: dict[str, np.ndarray], after: dict[str, np.ndarray],
                     sentiment: np.ndarray, after_label: str) -> str:
    """``samples.md``: for each prompt ``[k, P]``, the SFT and the RL policy's response with gold and proxy score.

    before/after: ``{"sample_responses": [k, L], "sample_gold": [k], "sample_proxy": [k]}`` of one policy.
    """
    lines = [
        "# Sample generations before and after RL", "",
        ("Held-out prompts (the first of the fixed evaluation prompts), one sampled response each. Tokens: content "
         "token 2 = `a`, 3 = `b`, ...; `+`/`-` mark the lexicon's positive/negative tokens (the gold score is their "
         "mean, minus a penalty for adjacent repeats); `</s>` = EOS. *gold*: the hidden gold score; *proxy*: the "
         "reward model's normalised score."), "",
    ]
    for i, prompt in enumerate(np.asarray(prompts)):
        lines += [f"## Prompt {i + 1}: `{render_tokens(prompt, sentiment)}`", "",
                  "| policy | response | gold | proxy |", "|---|---|---:|---:|"]
        for label, result in (("SFT (before RL)", before), (after_label, after)):
            text = render_tokens(result["sample_responses"][i], sentiment)
            lines.append(f"| {label} | `{text}` | {result['sample_gold'][i]:.3f} | {result['sample_proxy'][i]:.3f} |")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the run
def _median(values: np.ndarray) -> float:
    return float(np.median(np.asarray(values, np.float64)))


def _write_json(path: Path, value: Any) -> None:
    rundir.write_atomic(path, _json_bytes(value))


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    rundir.write_atomic(path, buffer.getvalue())


def _write_plot(path: Path, draw: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    draw(tmp)
    os.replace(tmp, path)


def _saved_object(run_dir: Path, path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` of the run ``run_dir`` to resume; a one-line ``RunDirError`` if it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RunDirError(f"cannot resume {run_dir}: {path} is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise RunDirError(f"cannot resume {run_dir}: {path} is not a JSON object (got {type(value).__name__})")
    return value


def _check_saved_options(run_dir: Path, path: Path, options: Any) -> None:
    """A one-line ``RunDirError`` unless ``options`` (``run.json``'s ``options``) has only known keys of the
    right types (the values themselves are checked by the run, as a new run's are)."""
    where = f"cannot resume {run_dir}: {path}"
    if not isinstance(options, dict):
        raise RunDirError(f"{where}: \"options\" is not a JSON object (got {type(options).__name__})")
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise RunDirError(f"{where}: unknown option(s) {unknown}; valid options: {sorted(OPTION_DEFAULTS)}")

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for name, value in options.items():
        if name in ("sweep_kl_coefs", "sweep_max_kls"):
            ok, what = isinstance(value, list) and all(map(is_number, value)), "a list of numbers"
        elif name in ("sft_from", "rm_from"):
            ok, what = value is None or isinstance(value, str), "a path or null"
        else:
            ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
        if not ok:
            raise RunDirError(f"{where}: option {name} must be {what}, got {value!r}")


def load_rlhf_run(run_dir: Path) -> tuple[RLHFConfig, dict[str, Any]]:
    """The config and run options (``num_seeds``, ``seed``, ``chunk_iterations``, sweeps, ``sft_from``,
    ``rm_from``) of an ``rlhf`` run directory, to resume it. One-line :class:`RunDirError` for a missing
    directory or file, a directory another command wrote, a ``config.json`` or ``run.json`` that is not a JSON
    object, and keys or values this version does not accept."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"cannot resume: run directory {run_dir} does not exist")
    kind = saved_run_kind(run_dir)
    if kind in ("train", "sweep"):
        raise RunDirError(f"{run_dir} holds a {kind} run, not an rlhf run; continue it with: python -m purejaxrl_ppo "
                          f"{kind} --resume {shlex.quote(str(run_dir))}")
    missing = [n for n in (CONFIG_JSON, rundir.RUN_FILE) if not (run_dir / n).is_file()]
    if missing:
        raise RunDirError(f"cannot resume {run_dir}: it has no {' or '.join(missing)} (not an `rlhf` run directory, "
                          "or stopped before it started)")
    config_path, run_path = run_dir / CONFIG_JSON, run_dir / rundir.RUN_FILE
    values = _saved_object(run_dir, config_path)
    unknown = sorted(set(values) - set(RLHFConfig.field_help()))
    if unknown:
        raise RunDirError(f"cannot resume {run_dir}: {config_path} has unknown key(s) {unknown} (not RLHFConfig "
                          "fields: damaged, or written by another version or command)")
    try:
        cfg = RLHFConfig(**values)
    except ConfigError as err:
        raise RunDirError(f"cannot resume {run_dir}: {config_path}: {err}") from None
    options = _saved_object(run_dir, run_path).get("options", {})
    _check_saved_options(run_dir, run_path, options)
    return cfg, options


def run_rlhf(cfg: RLHFConfig, out: Path, *, num_seeds: int = 4, seed: int = 0, sft_from: Path | None = None,
             rm_from: Path | None = None, chunk_iterations: int = 10, overwrite: bool = False, resume: bool = False,
             restart: bool = False, sweep_kl_coefs: tuple[float, ...] = (), sweep_max_kls: tuple[float, ...] = (),
             on_progress: Callable[[RLProgress], None] | None = None,
             on_stage: Callable[[str, str], None] | None = None, command: str = "") -> dict[str, Any]:
    """Run the three stages in ``out`` and write its files (see the module docstring); returns the summary.

    A new run refuses a non-empty ``out`` unless ``overwrite`` (which removes only what ``rlhf`` writes).
    ``resume=True`` continues the run in ``out``: ``cfg`` and the options must equal the saved ones
    (:func:`load_rlhf_run` reads them); a finished run with intact files is returned as it is. ``restart=True``
    (with ``resume``) drops the RL checkpoints and trains RL again from iteration 0 (SFT and the reward model
    are kept where intact): for a run whose every RL checkpoint was quarantined as damaged.
    ``on_stage(stage, message)`` reports stage events ("sft", "rm", "rl:<group>", "evaluate", "write");
    ``on_progress`` gets an :class:`RLProgress` after every RL chunk. Raises :class:`ConfigError` (one line)
    for bad options, an unusable ``sft_from``/``rm_from`` or run directory. The run directory is locked from
    the start to ``complete.json`` (one writer).
    """
    wall_start = time.perf_counter()
    out = Path(out)
    options = _check_options(num_seeds, seed, chunk_iterations, sweep_kl_coefs, sweep_max_kls)
    options.update(sft_from=None if sft_from is None else str(sft_from),
                   rm_from=None if rm_from is None else str(rm_from))
    on_stage = on_stage or (lambda stage, message: None)
    on_progress = on_progress or (lambda report: None)
    reused: dict[str, dict[str, Any]] = {}
    if restart and not resume:
        raise ConfigError("--restart trains a saved run's RL again from iteration 0; it needs --resume RUN_DIR")
    if resume:
        if overwrite:
            raise ConfigError("--resume continues a run; --overwrite starts one afresh: give one of them")
        saved_cfg, saved_options = load_rlhf_run(out)
        if saved_cfg != cfg or saved_options != options:
            differ = [k for k in cfg.to_dict() if saved_cfg.to_dict()[k] != cfg.to_dict()[k]]
            differ += [k for k in options if saved_options.get(k) != options[k]]
            raise RunDirError(f"cannot resume {out} with a different config or options ({', '.join(differ)}); "
                              f"resume with the saved ones (load_rlhf_run) or start a new run")
        if not restart and rundir.finished_problem(out) is None:
            on_stage("done", f"{out} has finished and its files are intact; nothing to do")
            return json.loads((out / "summary.json").read_text())
    else:
        reused = reused_stages(cfg, sft_from, rm_from)  # checked before anything is written
    with driver.open_run(out, command, new=not resume, overwrite=overwrite, owned=rundir.RLHF_OWNED):
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if resume:
            info = json.loads((out / rundir.RUN_FILE).read_text())
            info["commands"] = [*info.get("commands", []), {"command": command, "time": now, "resumed": True,
                                                            "versions": versions()}]
            (out / rundir.COMPLETE_FILE).unlink(missing_ok=True)
            if restart:
                driver.drop_progress(out, out / "checkpoints", out / "sweep_checkpoints")
            quarantine_damaged_stages(out)
            if not all((out / stage / CHECKSUMS).is_file() for stage in STAGES):
                reused = reused_stages(cfg, sft_from, rm_from)  # a stage still to do may come from elsewhere
        else:
            _write_json(out / CONFIG_JSON, cfg.to_dict())
            info = {"created": now, "algo_name": RLHFConfig.algo_name, "options": options, "versions": versions(),
                    "machine": machine_description(), rundir.COMPLETE_FILE: True,
                    "commands": [{"command": command, "time": now, "resumed": False}]}
        _write_json(out / rundir.RUN_FILE, info)
        return _run_locked(cfg, out, options, reused, resume and not restart, command, on_progress, on_stage,
                           wall_start)


class _ResponseLogs:
    """The main group's logs (``metrics.csv``, ``metrics_aggregate.csv``, ``metrics.jsonl`` in ``out``): each
    chunk's ``{name: [seeds, n]}`` with ``env_steps`` = responses generated per seed so far."""

    def __init__(self, out: Path, cfg: RLHFConfig, start: StartPoint | None):
        self.batch = cfg.rollout_batch
        self.sinks = [log_sinks.CSVSink(out, self.batch), log_sinks.JSONLSink(out, self.batch)]
        self.logged = 0
        if start is not None and start.metrics:  # a resume rewrites the logs from iteration 1
            self.write(start.metrics)

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        rows, n = next(iter(metrics.values())).shape if metrics else (0, 0)
        responses = (self.logged + np.arange(1, n + 1)) * self.batch
        for sink in self.sinks:
            sink.write({**metrics, "env_steps": np.broadcast_to(responses, (rows, n)).copy()})
        self.logged += n

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class _NoLogs:
    """A sweep group's logs: none (its metrics go to ``sweep_metrics.npz``)."""

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        pass

    def close(self) -> None:
        pass


def _run_locked(cfg: RLHFConfig, out: Path, options: dict[str, Any], reused: dict[str, dict[str, Any]],
                resume: bool, command: str, on_progress: Callable, on_stage: Callable, wall_start: float
                ) -> dict[str, Any]:
    """The body of :func:`run_rlhf`, holding the run directory's lock: the stages, then the final files."""
    task = make_task(cfg)
    seed, num_seeds = options["seed"], options["num_seeds"]
    lm_shape = jax.eval_shape(lambda key: model.init_lm(key, cfg), jax.random.PRNGKey(0))
    rm_shape = jax.eval_shape(lambda key: model.init_scalar_model(key, cfg), jax.random.PRNGKey(0))
    sft_params, sft = _run_stage("sft", out, lm_shape, reused.get("sft"), stages.train_sft,
                                 (cfg, task, stage_key(seed, "sft")), _describe_sft, on_stage)
    rm_params, rm = _run_stage("rm", out, rm_shape, reused.get("rm"), stages.train_rm,
                               (cfg, task, sft_params, stage_key(seed, "rm")), _describe_rm, on_stage)

    evaluator = Evaluator(cfg, task, sft_params, rm_params)
    groups = rl_groups(cfg, num_seeds, options["sweep_kl_coefs"], options["sweep_max_kls"])
    main_layout = seed_layout(num_seeds)
    on_stage("evaluate", "the SFT policy (before RL) ...")
    initial = evaluator(main_layout, main_layout.put(
        jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_seeds, *x.shape)), sft_params)))

    def after_chunk(report: RLProgress) -> None:
        if report.group == "main":
            bad = sorted(k for k, v in report.chunk_metrics.items() if not np.all(np.isfinite(v)))
            if bad:
                on_stage("rl:main", f"warning: non-finite {', '.join(bad)} by iteration {report.iterations_done}")
        on_progress(report)

    results: list[GroupResult] = []
    finals: list[dict[str, np.ndarray]] = []
    for group in groups:
        logs = (lambda start: _ResponseLogs(out, cfg, start)) if group.name == "main" else (lambda start: _NoLogs())
        result = train_group(group, task, sft_params, rm_params, out, seed=seed,
                             chunk_iterations=options["chunk_iterations"], resume=resume, on_chunk=after_chunk,
                             on_stage=on_stage, open_sinks=logs)
        on_stage("evaluate", f"{group_label(group)} after RL ...")
        finals.append(evaluator(result.layout, result.states.policy))
        result.states = None  # free the group's device buffers before the next one
        results.append(result)

    on_stage("write", "summary, samples and plots ...")
    return _write_outputs(cfg, out, options, command, sft, rm, evaluator, initial, results, finals, wall_start)


def _write_outputs(cfg, out, options, command, sft, rm, evaluator, initial, results, finals, wall_start) -> dict:
    """Every final file, then ``complete.json`` (names and SHA-256) last; returns the summary."""
    main, final = results[0], finals[0]
    scalar_names = ("gold_score", "proxy_score", "kl_to_reference")
    per_seed = {**{f"{k}_initial": initial[k].tolist() for k in scalar_names},
                **{k: final[k].tolist() for k in scalar_names}}
    if main.metrics["kl_coef"].shape[1]:
        per_seed["final_kl_coef"] = main.metrics["kl_coef"][:, -1].tolist()

    def stage_timing(metrics: dict) -> dict:  # a reused stage cost this run nothing
        reused = metrics.get("reused_from")
        return {"compile_seconds": 0.0 if reused else metrics["compile_seconds"],
                "run_seconds": 0.0 if reused else metrics["run_seconds"], "reused_from": reused}

    timings = {
        "sft": stage_timing(sft),
        "rm": stage_timing(rm),
        "rl": {"compile_seconds": main.compile_seconds, "run_seconds": main.run_seconds},
        "sweep": {"compile_seconds": sum(r.compile_seconds for r in results[1:]),
                  "run_seconds": sum(r.run_seconds for r in results[1:])},
        "evaluate": {"compile_seconds": evaluator.compile_seconds, "run_seconds": evaluator.run_seconds},
    }
    summary = {
        "algo": cfg.algo, "kl_coef": cfg.kl_coef, "max_kl": cfg.max_kl if cfg.algo == "trpo" else None,
        "adaptive_kl": cfg.adaptive_kl, "num_seeds": options["num_seeds"], "seed": options["seed"],
        "num_iterations": cfg.num_iterations,
        "sft_loss": float(sft["heldout_loss"]), "sft_entropy_floor": float(sft["base_entropy"]),
        "rm_accuracy": float(rm["heldout_accuracy"]), "rm_gold_accuracy": float(rm["heldout_gold_accuracy"]),
        **{f"{k}_initial": _median(initial[k]) for k in scalar_names},
        **{k: _median(final[k]) for k in scalar_names},
        "per_seed": per_seed,
        "stages": timings,
        "compile_seconds": float(sum(t["compile_seconds"] for t in timings.values())),
        "run_seconds": float(sum(t["run_seconds"] for t in timings.values())),
        "wall_seconds": time.perf_counter() - wall_start,
        "rl_response_tokens_per_second": main.tokens_per_second,
        "sweep": [label for r in results[1:] for label, *_ in group_points(r)],
        "config": cfg.to_dict(),
        "command": command,
    }
    files: dict[str, Path] = {}
    files["metrics"] = out / "metrics.npz"
    responses = np.broadcast_to(np.arange(1, cfg.num_iterations + 1) * cfg.rollout_batch,
                                (options["num_seeds"], cfg.num_iterations))
    _write_npz(files["metrics"], {**main.metrics, "responses": responses})
    files["summary"] = out / "summary.json"
    _write_json(files["summary"], summary)
    files["samples"] = out / "samples.md"
    after_label = f"{setting_label(cfg, cfg.kl_coef)}, seed 0 (after RL)"
    prompts = np.asarray(evaluator.prompts)[: evaluator.num_samples]
    before, after = ({k: v[0] for k, v in r.items() if k.startswith("sample_")} for r in (initial, final))  # seed 0
    rundir.write_atomic(files["samples"], samples_markdown(prompts, before, after, np.asarray(make_task(cfg).sentiment),
                                                           after_label).encode())
    title = f"RLHF {setting_label(cfg, cfg.kl_coef)}: {options['num_seeds']} seeds"
    files["curves"] = out / "rlhf_curves.png"
    _write_plot(files["curves"], lambda p: plot_rlhf_curves(main.metrics, p, title=title))

    points, sweep = [], []
    for result, evaluation in zip(results, finals):
        for label, group_cfg, beta, rows in group_points(result):
            label = label + (" (this run)" if result.group.name == "main" else "")
            point = SweepPoint(label, evaluation["kl_to_reference"][rows], evaluation["gold_score"][rows],
                               evaluation["proxy_score"][rows])
            points.append(point)
            sweep.append({"label": label, "algo": group_cfg.algo, "kl_coef": beta,
                          "max_kl": group_cfg.max_kl if group_cfg.algo == "trpo" else None,
                          **{k: _median(evaluation[k][rows]) for k in scalar_names},
                          "per_seed": {k: evaluation[k][rows].tolist() for k in scalar_names}})
    trajectory = {k: main.metrics[k] for k in HEADLINE}
    files["overoptimisation"] = out / "overoptimisation.png"
    _write_plot(files["overoptimisation"], lambda p: plot_overoptimisation(
        trajectory, points, p, trajectory_label=f"{setting_label(cfg, cfg.kl_coef)} (median over seeds)"))
    if len(results) > 1:
        files["sweep"] = out / "sweep.json"
        _write_json(files["sweep"], {"initial": {k: _median(initial[k]) for k in scalar_names}, "settings": sweep})
        files["sweep_metrics"] = out / "sweep_metrics.npz"
        _write_npz(files["sweep_metrics"], {f"{r.group.name}/{k}": v for r in results[1:] for k, v in r.metrics.items()}
                   | {f"{r.group.name}/kl_coefs": np.asarray(r.group.kl_coefs) for r in results[1:]})
    names = [str(p.relative_to(out)) for p in files.values()]
    names += [f"{stage}/{name}" for stage in STAGES for name in (PARAMS_FILE, STAGE_METRICS_FILE, CHECKSUMS)]
    driver.finish(out, names)
    return summary
