"""Fixed small runs whose results must not change across a refactor: record them, then compare.

Every run uses only the public API (``import purejaxrl_ppo as pjp``), so the same script
runs on a checkout from before and after a restructuring:

    python benchmarks/equality.py record  --out /tmp/before.npz     # on the old tree
    python benchmarks/equality.py compare --out /tmp/after.npz --reference /tmp/before.npz

``record`` writes every per-update metric and every leaf of every final state (params,
optimiser state, env state, keys, normalisers) of each run into one ``.npz``; ``compare``
does the same and reports, per run, whether all arrays are bit-identical (NaN == NaN) and
the largest difference where not. Exit code 1 if any run differs (or is missing).

The runs: PPO and TRPO on CartPole-v1 and Pendulum-v1 (tanh squash, observation
normalisation and reward scaling on the Pendulum PPO run), PPO with the KL-adaptive
objective and with periodic evaluation, a Brax task (the library's preset at a tiny
budget), a ``sweep`` over two clip values, ``train_seeds`` in blocks, a durable run
that is interrupted after its second chunk and resumed, and three runs of the command
line (``purejaxrl_ppo.cli.commands.main``) that are compared through the files they leave
in their run directory:

* ``cli_sweep``: ``sweep`` from a run file (``pjp.write_run_file``) over two ``ent_coef``
  values × 2 seeds in 3 chunks: ``metrics.npz``, the per-point and aggregate CSVs, the
  numbers of ``summary.json``/``summary.csv`` and the newest checkpoint (state and history);
* ``rlhf``: ``rlhf`` with a tiny model, 2 seeds, 4 RL iterations in 2 chunks and a β sweep
  of two values (the RL groups path): ``metrics.npz``, ``sweep_metrics.npz``, the RL logs,
  the SFT and reward-model ``params.msgpack`` (bytes and decoded leaves), the numbers of
  ``summary.json``, ``sweep.json`` and the stages' ``metrics.json``, and the newest
  checkpoint of every RL group;
* ``rlhf_resumed``: a copy of that run directory cut back to what a run killed right after
  its first RL checkpoint leaves (stages, ``run.json``, ``config.json``, checkpoint 2), then
  ``rlhf --resume``: the same files (they should equal ``rlhf``'s too).

Timings (``timing.csv``, every ``*_seconds``/``*_per_second`` field), the command line,
machine and version descriptions, ``run.json`` and ``complete.json`` are left out: they
differ from run to run.

``--save-run-dir DIR`` also leaves that interrupted (not yet resumed) durable run directory
in DIR, and ``--save-rlhf-run-dir DIR`` the cut-back RLHF run directory, to check that a run
directory written by one version resumes with another.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import csv
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import purejaxrl_ppo as pjp  # noqa: I001  (first: applies the XLA:CPU workaround)

import jax
import numpy as np

SEEDS = 3


def _cartpole(algo: str, **extra):
    cls = pjp.PPOConfig if algo == "ppo" else pjp.TRPOConfig
    return cls(env_name="CartPole-v1", num_envs=4, num_steps=32, total_timesteps=4 * 32 * 6, **extra)


def _pendulum(algo: str, **extra):
    cls = pjp.PPOConfig if algo == "ppo" else pjp.TRPOConfig
    return cls(env_name="Pendulum-v1", num_envs=4, num_steps=32, total_timesteps=4 * 32 * 6, **extra)


def _brax(algo: str):
    cls = pjp.PPOConfig if algo == "ppo" else pjp.TRPOConfig
    env = "brax/inverted_pendulum"
    preset = {**pjp.brax_preset(algo, env), "num_envs": 8, "num_steps": 16, "total_timesteps": 8 * 16 * 3}
    return cls(env_name=env, hidden_sizes=(32, 32), **preset)


def _vmapped(config) -> dict[str, np.ndarray]:
    keys = jax.random.split(jax.random.PRNGKey(7), SEEDS)
    out = jax.jit(jax.vmap(pjp.make_train(config)))(keys)
    return _arrays(out.metrics, out.state)


def _arrays(metrics, state) -> dict[str, np.ndarray]:
    arrays = {f"metric/{k}": np.asarray(v) for k, v in metrics.items()}
    for i, leaf in enumerate(jax.tree_util.tree_leaves(state)):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        arrays[f"state/{i:03d}"] = np.asarray(leaf)
    return arrays


def _sweep() -> dict[str, np.ndarray]:
    result = pjp.sweep(_cartpole("ppo"), {"clip_eps": [0.1, 0.3]}, num_seeds=2, seed=1)
    return {f"metric/{k}": v for k, v in result.metrics.items()}


def _train_seeds() -> dict[str, np.ndarray]:
    out = pjp.train_seeds(_cartpole("trpo"), 5, jax.random.PRNGKey(3), seeds_per_batch=2)
    return _arrays(out.metrics, out.state)


class _Stop(Exception):
    pass


def _durable(save_run_dir: Path | None) -> dict[str, np.ndarray]:
    config = _cartpole("ppo", normalize_observations=True)
    options = pjp.RunOptions(num_seeds=2, seed=5, chunk_updates=2, keep_checkpoints=3)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"

        def stop(report):
            if report.index == 1:
                raise _Stop

        try:
            pjp.train_durable(run_dir, config, options, on_chunk=stop)
        except _Stop:
            pass
        if save_run_dir is not None:
            shutil.rmtree(save_run_dir, ignore_errors=True)
            shutil.copytree(run_dir, save_run_dir)
        result = pjp.train_durable(run_dir, resume=True)
        return _arrays(result.metrics, result.final_state)


# ---------------------------------------------------------------- command-line runs (files of a run directory)

def _cli(argv: list[str]) -> None:
    from purejaxrl_ppo.cli.commands import main as cli_main

    with contextlib.redirect_stdout(io.StringIO()):  # --quiet still prints the summary's path
        rc = cli_main([str(a) for a in argv])
    if rc != 0:
        raise RuntimeError(f"purejaxrl_ppo {' '.join(map(str, argv))} exited with {rc}")


#: Keys of a JSON file (or CSV columns) that are not results: the command line, machine and versions, the
#: echoed config, dates; and every timing (``_not_result``).
_NOT_RESULTS = {"command", "machine", "versions", "created", "finished", "config", "time", "timing"}


def _not_result(key: str) -> bool:
    return key in _NOT_RESULTS or key.endswith("seconds") or "per_second" in key


def _json_numbers(value, prefix: str, out: dict[str, np.ndarray]) -> None:
    """Every number (and bool) of a JSON value, keyed by its path; lists of numbers as one array; ``null`` as
    NaN; strings and the keys that are no results (:func:`_not_result`) left out."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not _not_result(key):
                _json_numbers(item, f"{prefix}/{key}", out)
    elif isinstance(value, list) and value and all(isinstance(v, (bool, int, float)) for v in value):
        out[prefix] = np.asarray(value)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_numbers(item, f"{prefix}/{i}", out)
    elif isinstance(value, (bool, int, float)):
        out[prefix] = np.asarray(value)
    elif value is None:
        out[prefix] = np.asarray(np.nan)


def _json_file(path: Path, prefix: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    _json_numbers(json.loads(path.read_text()), prefix, out)
    return out


def _csv_file(path: Path, prefix: str) -> dict[str, np.ndarray]:
    """Each column of a CSV log as a float64 array (its text parsed; the seconds columns left out)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = rows[0].keys() if rows else ()
    return {f"{prefix}/{c}": np.array([float(r[c]) if r[c] != "" else np.nan for r in rows])
            for c in columns if not _not_result(c)}


def _npz_file(path: Path, prefix: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {f"{prefix}/{k}": data[k] for k in data.files}


def _bytes_file(path: Path, prefix: str) -> dict[str, np.ndarray]:
    return {prefix: np.frombuffer(path.read_bytes(), dtype=np.uint8).copy()}


def _msgpack_params(path: Path, prefix: str) -> dict[str, np.ndarray]:
    """A params file as its bytes (``uint8``) and as its decoded leaves (for a readable difference)."""
    from flax import serialization

    tree = serialization.msgpack_restore(path.read_bytes())
    out = _bytes_file(path, f"{prefix}/bytes")
    for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out[f"{prefix}/leaf/{jax.tree_util.keystr(keys, simple=True, separator='/')}"] = np.asarray(leaf)
    return out


def _newest_checkpoint(directory: Path, prefix: str) -> dict[str, np.ndarray]:
    """The newest checkpoint under ``directory`` (verified against its manifest): its step, every leaf of
    its state keyed by its path (restored without a template, so without the package's state types)
    and its metric history."""
    import orbax.checkpoint as ocp

    from purejaxrl_ppo.runs.checkpoint import Checkpointer

    checkpointer = Checkpointer(directory)
    try:
        step = checkpointer.steps()[-1]
        checkpointer.verify(step)
    finally:
        checkpointer.close()
    out = {f"{prefix}/step": np.asarray(step)}
    with ocp.StandardCheckpointer() as reader:
        for item in ("state", "history"):
            tree = reader.restore((Path(directory) / str(step) / item).absolute())
            for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                out[f"{prefix}/{item}/{jax.tree_util.keystr(keys, simple=True, separator='/')}"] = np.asarray(leaf)
    return out


def _cli_sweep() -> dict[str, np.ndarray]:
    config = _cartpole("ppo", normalize_observations=True)
    options = pjp.RunOptions(num_seeds=2, seed=4, chunk_updates=2, keep_checkpoints=2)
    with tempfile.TemporaryDirectory() as tmp:
        run_file = pjp.write_run_file(Path(tmp) / "sweep.yaml", config, options)
        run = Path(tmp) / "run"
        _cli(["sweep", "--config", run_file, "--set", "ent_coef=0.0,0.02", "--out", run, "--quiet"])
        arrays = {**_npz_file(run / "metrics.npz", "metrics.npz"),
                  **_json_file(run / "summary.json", "summary.json"),
                  **_csv_file(run / "summary.csv", "summary.csv"),
                  **_newest_checkpoint(run / "checkpoints", "checkpoint")}
        points = sorted(p for p in (run / "points").iterdir() if p.is_dir())
        if len(points) != 2:
            raise RuntimeError(f"expected 2 grid points in {run / 'points'}, found {[p.name for p in points]}")
        for point in points:
            for name in ("metrics.csv", "metrics_aggregate.csv"):
                arrays.update(_csv_file(point / name, f"points/{point.name}/{name}"))
        return arrays


RLHF_TINY = ["--vocab-size", "8", "--prompt-len", "3", "--response-len", "5", "--base-mean-length", "3",
             "--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--sft-steps", "20", "--rm-steps", "20",
             "--rm-train-pairs", "64", "--num-iterations", "4", "--rollout-batch", "8", "--num-minibatches", "2",
             "--eval-size", "16", "--num-seeds", "2", "--seed", "2", "--chunk-iterations", "2",
             "--sweep-kl-coefs", "0", "0.1"]


def _rlhf_arrays(run: Path) -> dict[str, np.ndarray]:
    arrays = {**_npz_file(run / "metrics.npz", "metrics.npz"),
              **_json_file(run / "summary.json", "summary.json"),
              **_json_file(run / "sweep.json", "sweep.json"),
              **_newest_checkpoint(run / "checkpoints", "checkpoint/main")}
    if (run / "sweep_metrics.npz").is_file():
        arrays.update(_npz_file(run / "sweep_metrics.npz", "sweep_metrics.npz"))
    for stage in ("sft", "rm"):
        arrays.update(_msgpack_params(run / stage / "params.msgpack", f"{stage}/params.msgpack"))
        arrays.update(_json_file(run / stage / "metrics.json", f"{stage}/metrics.json"))
    for name in ("metrics.csv", "metrics_aggregate.csv"):
        arrays.update(_csv_file(run / name, name))
    groups = sorted(p for p in (run / "sweep_checkpoints").iterdir() if p.is_dir())
    if not groups:
        raise RuntimeError(f"no RL sweep group in {run / 'sweep_checkpoints'}")
    for group in groups:
        arrays.update(_newest_checkpoint(group, f"checkpoint/sweep_{group.name}"))
    return arrays


_RLHF_RUN: list[Path] = []


def _finished_rlhf_run() -> Path:
    """The uninterrupted RLHF run directory, trained once per process (``rlhf`` and ``rlhf_resumed`` share it)."""
    if not _RLHF_RUN:
        tmp = Path(tempfile.mkdtemp(prefix="equality-rlhf-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        _cli(["rlhf", *RLHF_TINY, "--out", tmp / "run", "--quiet"])
        _RLHF_RUN.append(tmp / "run")
    return _RLHF_RUN[0]


#: What a run killed right after its first RL checkpoint has written: the run's description, the finished
#: stages and the main group's checkpoints (the sweep groups train after the main one). The logs are
#: dropped too: a resume rewrites them from iteration 0.
_RLHF_BEFORE_KILL = {".lock", "run.json", "config.json", "sft", "rm", "checkpoints"}


def _rlhf_resumed(save_run_dir: Path | None) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(_finished_rlhf_run(), run)
        for path in run.iterdir():
            if path.name in _RLHF_BEFORE_KILL:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
        if steps[0] != 2 or len(steps) < 2:
            raise RuntimeError(f"expected RL checkpoints 2 and later in {run / 'checkpoints'}, found {steps}")
        for step in steps[1:]:
            shutil.rmtree(run / "checkpoints" / str(step))
        if save_run_dir is not None:
            shutil.rmtree(save_run_dir, ignore_errors=True)
            shutil.copytree(run, save_run_dir)
        _cli(["rlhf", "--resume", run, "--quiet"])
        commands = json.loads((run / "run.json").read_text())["commands"]
        if [c.get("resumed") for c in commands] != [False, True]:
            raise RuntimeError(f"{run / 'run.json'} does not record one resume: {commands}")
        return _rlhf_arrays(run)


def runs(save_run_dir: Path | None, save_rlhf_run_dir: Path | None = None):
    """``name -> thunk`` of every fixed run."""
    return {
        "ppo_cartpole": lambda: _vmapped(_cartpole("ppo")),
        "trpo_cartpole": lambda: _vmapped(_cartpole("trpo")),
        "ppo_pendulum_norm_tanh": lambda: _vmapped(_pendulum(
            "ppo", normalize_observations=True, scale_rewards=True, action_squash="tanh")),
        "trpo_pendulum": lambda: _vmapped(_pendulum("trpo")),
        "ppo_cartpole_kl_adaptive": lambda: _vmapped(_cartpole("ppo", policy_objective="kl_adaptive")),
        "ppo_cartpole_eval": lambda: _vmapped(_cartpole("ppo", eval_every=2, eval_episodes=2)),
        "ppo_brax": lambda: _vmapped(_brax("ppo")),
        "trpo_brax": lambda: _vmapped(_brax("trpo")),
        "sweep": _sweep,
        "train_seeds_blocks": _train_seeds,
        "durable_resumed": lambda: _durable(save_run_dir),
        "cli_sweep": _cli_sweep,
        "rlhf": lambda: _rlhf_arrays(_finished_rlhf_run()),
        "rlhf_resumed": lambda: _rlhf_resumed(save_rlhf_run_dir),
    }


def record(out: Path, only: list[str] | None, save_run_dir: Path | None,
           save_rlhf_run_dir: Path | None = None) -> dict[str, np.ndarray]:
    print(f"purejaxrl_ppo from {Path(pjp.__file__).parent}", flush=True)
    arrays: dict[str, np.ndarray] = {}
    for name, thunk in runs(save_run_dir, save_rlhf_run_dir).items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        for key, value in thunk().items():
            arrays[f"{name}/{key}"] = value
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    np.savez_compressed(out, **arrays)
    return arrays


def compare(new: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> bool:
    """Print one line per run; True when every run's arrays are bit-identical."""
    ok = True
    names = sorted({k.split("/", 1)[0] for k in reference} | {k.split("/", 1)[0] for k in new})
    for run in names:
        ref_keys = {k for k in reference if k.startswith(run + "/")}
        new_keys = {k for k in new if k.startswith(run + "/")}
        if ref_keys != new_keys:
            ok = False
            print(f"{run}: DIFFERENT KEYS (only before: {sorted(ref_keys - new_keys)[:5]}, "
                  f"only after: {sorted(new_keys - ref_keys)[:5]})")
            continue
        worst, differing = 0.0, []
        for key in sorted(ref_keys):
            a, b = reference[key], new[key]
            if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                differing.append(key)
                if a.shape == b.shape and a.dtype.kind in "fiu":
                    worst = max(worst, float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
        ok &= not differing
        status = "bit-identical" if not differing else f"DIFFERS in {len(differing)} arrays (max |diff| {worst:.3g}): {differing[:4]}"
        print(f"{run}: {len(ref_keys)} arrays {status}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("record", "compare"))
    parser.add_argument("--out", type=Path, required=True, help=".npz to write this tree's arrays to")
    parser.add_argument("--reference", type=Path, help="compare: the .npz recorded before")
    parser.add_argument("--only", nargs="*", help="run only these runs")
    parser.add_argument("--save-run-dir", type=Path, help="leave the interrupted durable run here")
    parser.add_argument("--save-rlhf-run-dir", type=Path, help="leave the cut-back (not yet resumed) RLHF run here")
    args = parser.parse_args(argv)
    arrays = record(args.out, args.only, args.save_run_dir, args.save_rlhf_run_dir)
    if args.mode == "record":
        return 0
    if args.reference is None:
        parser.error("compare needs --reference")
    with np.load(args.reference) as data:
        reference = {k: data[k] for k in data.files if not args.only or k.split("/", 1)[0] in args.only}
    return 0 if compare(arrays, reference) else 1


if __name__ == "__main__":
    sys.exit(main())
