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
budget), a ``sweep`` over two clip values, ``train_seeds`` in blocks, and a durable run
that is interrupted after its second chunk and resumed.

``--save-run-dir DIR`` also leaves that interrupted (not yet resumed) run directory in
DIR, to check that a run directory written by one version resumes with another.
"""

from __future__ import annotations

import argparse
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


def runs(save_run_dir: Path | None):
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
    }


def record(out: Path, only: list[str] | None, save_run_dir: Path | None) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name, thunk in runs(save_run_dir).items():
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
    args = parser.parse_args(argv)
    arrays = record(args.out, args.only, args.save_run_dir)
    if args.mode == "record":
        return 0
    if args.reference is None:
        parser.error("compare needs --reference")
    with np.load(args.reference) as data:
        reference = {k: data[k] for k in data.files if not args.only or k.split("/", 1)[0] in args.only}
    return 0 if compare(arrays, reference) else 1


if __name__ == "__main__":
    sys.exit(main())
