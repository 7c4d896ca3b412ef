"""Throughput of the compiled training program, its ceilings, and peers side by side.

    python benchmarks/throughput.py --quick                  # minutes: small budgets, no peers
    python benchmarks/throughput.py --seeds 1 16 64 --peers rejax sb3-ppo sb3-trpo --setup-peers
    python benchmarks/throughput.py --algos ppo --seeds 1 4 16 64 256 1024 4096 --max-steps-per-call 2000000 --peers
    python benchmarks/throughput.py --seeds --peers purejaxrl brax-ppo --purejaxrl-dir DIR --max-steps-per-call 4000000
    python benchmarks/throughput.py --processes 2            # 1x1 vs 1x2 devices vs 2 processes (processes.py)

For every (algo, num_envs, num_seeds) point, in a fresh subprocess (so the peak
RSS is that point's own): compile time (wall and process CPU), first call (compile + run), steady
state (second call) env-steps/s, peak host RSS, device memory stats where the
backend has them; out-of-memory is reported, not raised. Ceilings, same run:
a rollout-only program (same env and network forward, no update), raw env
stepping (uniform random actions), and the compute roofline: FLOPs per env step
counted analytically (matmul FLOPs), with XLA's cost analysis of ONE vmapped
update recorded beside it (XLA counts a loop body once, and an update still
contains the rollout and minibatch loops, so that figure is a lower bound),
against the matmul peak measured in the same run. Peers run as subprocesses,
alternating with ours (A B A B); a missing peer is skipped with an install hint.

A sweep to thousands of seeds at the full budget takes hours on a CPU; with
``--max-steps-per-call N`` each sweep point trains fewer updates per seed, so
one timed call runs at most about N env steps over all its seeds (at least one
update per seed). Steady-state steps/s stays comparable (the compiled update is
the same, only the scan is shorter); the final returns of such points are not
learning results and are left out of the table. Each point records
``steps_capped`` and its ``total_timesteps`` per seed. Peer A/B pairs always
run the full ``--total-timesteps``.

Writes ``results/throughput.json`` and ``results/throughput.png`` and prints a
markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"
PEERS = {
    "rejax": {
        "venv": VENVS / "rejax",
        # jax 0.4.38 / flax 0.10.2 is a combination rejax 0.1.3 + gymnax 0.0.9 run with (tested here).
        "install": ["rejax==0.1.3", "gymnax<1.0", "jax[cpu]==0.4.38", "flax==0.10.2", "optax==0.2.4",
                    "chex==0.1.88", "distrax==0.1.5", "numpy<2.2", "tensorflow-probability<0.26"],
        "module": "rejax",
    },
    "sb3": {
        "venv": VENVS / "sb3",
        "install": ["torch==2.13.0", "stable-baselines3>=2.3,<3", "sb3-contrib>=2.3,<3", "gymnasium"],
        "module": "sb3_contrib",
    },
}


# --------------------------------------------------------------------------- one point (child process)

def _is_oom(error: BaseException) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "ut of memory" in text or isinstance(error, MemoryError)


def _device_memory() -> dict | None:
    import jax

    stats = jax.devices()[0].memory_stats()
    return None if not stats else {k: int(v) for k, v in stats.items() if "bytes" in k}


def _timed(fn, *args):
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def analytic_flops_per_env_step(config) -> float:
    """Matmul FLOPs (2 per multiply-add) per env step of the training program, counted by hand.

    Shared: the rollout's actor + critic forward per step and one critic forward for the GAE
    bootstrap. The update's share comes from the algorithm itself
    (``Algorithm.update_matmul_flops``, asked through the registry): e.g. PPO
    ``update_epochs`` x (forward + backward) of actor and critic; TRPO the old policy, the
    surrogate's gradient, ``cg_iters + 1`` Fisher-vector products on the Fisher's samples, one
    line-search trial and ``critic_epochs`` x 3 critic forwards.
    """
    import numpy as np

    import purejaxrl_ppo as pjp
    from purejaxrl_ppo.core.envs import make_env

    env = make_env(config.env_name)
    sizes = [int(np.prod(env.observation_shape)), *config.hidden_sizes]
    trunk = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    actor = trunk + 2 * sizes[-1] * env.action_space.action_dim
    critic = trunk + 2 * sizes[-1]
    rollout = (actor + critic) + critic
    update = pjp.registered_algorithms()[config.algo_name].update_matmul_flops(config, actor, critic)
    return rollout + (float("nan") if update is None else update)


def run_point(spec: dict) -> dict:
    """Measure one (algo, num_envs, num_seeds) point; runs in its own process."""
    import purejaxrl_ppo as pjp  # before jax runs anything: applies the XLA:CPU workaround

    if spec.get("cpu_devices", 1) > 1:  # before the config: building it imports gymnax, which starts jax
        pjp.use_cpu_devices(spec["cpu_devices"])
    import jax

    from purejaxrl_ppo.core.envs import make_env
    from purejaxrl_ppo.core.rollout import collect
    from purejaxrl_ppo.core.loop import components as _components, init_train_state, train_updates

    config = pjp.config_from_dict({"algo": spec["algo"], "num_envs": spec["num_envs"],
                                   "total_timesteps": spec["total_timesteps"]})
    n = spec["num_seeds"]
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    if spec.get("cpu_devices", 1) > 1:  # train_seeds' program: seeds sharded over the CPU devices
        from purejaxrl_ppo.launch.layout import seed_layout

        layout = seed_layout(n)
        assert layout.mesh.devices.size == spec["cpu_devices"], jax.devices()

        def batched(fn):
            return layout.map(fn)

        place = layout.put
    else:  # one device: the plain vmapped program

        def batched(fn):
            return jax.jit(jax.vmap(fn))

        def place(tree):
            return tree
    steps = n * config.num_updates * config.batch_size
    out = {**spec, "num_updates": config.num_updates, "env_steps": steps}
    try:
        train, keys = batched(pjp.make_train(config)), place(keys)
        start, cpu_start = time.perf_counter(), time.process_time()
        compiled = train.lower(keys).compile()
        out["compile_seconds"] = time.perf_counter() - start
        # process CPU time (all threads): comparable on a machine shared with other jobs, where wall time is not
        out["compile_cpu_seconds"] = time.process_time() - cpu_start
        out["first_call_seconds"] = out["compile_seconds"] + _timed(compiled, keys)
        result = compiled(keys)
        jax.block_until_ready(result)
        start = time.perf_counter()
        result = jax.block_until_ready(train(keys))
        out["steady_seconds"] = time.perf_counter() - start
        out["env_steps_per_second"] = steps / out["steady_seconds"]
        out["first_call_env_steps_per_second"] = steps / out["first_call_seconds"]
        finals = pjp.final_returns(jax.device_get(result.metrics["episode_return"]))
        import numpy as np

        out["final_return_median"] = float(np.nanmedian(finals))

        # FLOPs of one vmapped update (the scan body), times the number of updates.
        states = batched(lambda k: init_train_state(config, k))(keys)
        one = jax.jit(jax.vmap(lambda s: train_updates(config, s, 1))).lower(states).compile()
        cost = one.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops_update = float(cost.get("flops", float("nan")))
        out["xla_flops_per_update_all_seeds"] = flops_update
        out["flops_per_env_step_xla"] = flops_update / (n * config.batch_size)
        out["flops_per_env_step_analytic"] = analytic_flops_per_env_step(config)
        # XLA counts every loop body once, and one update still holds loops (the num_steps rollout
        # scan, the epoch x minibatch scans), so the XLA figure undercounts; measured here it is
        # ~10x below the hand count. The roofline therefore uses the hand count.
        out["achieved_flops_per_second"] = out["flops_per_env_step_analytic"] * out["env_steps_per_second"]

        # Ceiling 1: rollout only (same env, same network forward, no update).
        env, network, _ = _components(config)

        def rollouts(state):
            def body(runner, key):
                runner, traj = collect(env, network, state.algo_state.params, runner, key, config.num_steps)
                return runner, traj.reward.sum()
            return jax.lax.scan(body, state.runner, jax.random.split(state.key, config.num_updates))[1]

        roll = batched(rollouts)
        jax.block_until_ready(roll(states))
        out["rollout_only_env_steps_per_second"] = steps / _timed(roll, states)

        # Ceiling 2: raw env stepping with uniform random actions.
        raw_env = make_env(config.env_name)
        num_actions = raw_env.action_space.num_actions

        def raw(key):
            obs, env_state = jax.vmap(raw_env.reset)(jax.random.split(key, config.num_envs))

            def body(env_state, k):
                ka, ks = jax.random.split(k)
                action = jax.random.randint(ka, (config.num_envs,), 0, num_actions)
                result = jax.vmap(raw_env.step)(jax.random.split(ks, config.num_envs), env_state, action)
                return result.state, result.reward.sum()
            return jax.lax.scan(body, env_state, jax.random.split(key, config.num_updates * config.num_steps))[1]

        raw_fn = batched(raw)
        jax.block_until_ready(raw_fn(keys))
        out["raw_env_steps_per_second"] = steps / _timed(raw_fn, keys)
        out["device_memory"] = _device_memory()
    except Exception as error:  # noqa: BLE001 - reported, not raised
        if not _is_oom(error):
            raise
        out["error"] = "out of memory: " + str(error).splitlines()[0][:200]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def matmul_peak() -> dict:
    """Measured float32 matmul FLOP/s: one 1024³ product and batched 16 × (128×64 @ 64×64).

    One jitted product per call, best of 10 calls. The batched shape (that of a
    minibatch through a 64-wide layer, for 16 seeds) is run 32 times per call
    (a ``[32, 16]`` batch of independent products) so dispatch overhead is small.
    """
    import purejaxrl_ppo  # noqa: F401
    import jax
    import jax.numpy as jnp

    out = {}
    for name, a_shape, b_shape in (("1024^3", (1024, 1024), (1024, 1024)),
                                   ("16x(128x64@64x64)", (32, 16, 128, 64), (32, 16, 64, 64))):
        a = jax.random.normal(jax.random.PRNGKey(0), a_shape, jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(1), b_shape, jnp.float32)
        fn = jax.jit(jnp.matmul)
        jax.block_until_ready(fn(a, b))
        best = min(_timed(fn, a, b) for _ in range(10))
        batch = 1
        for d in a_shape[:-2]:
            batch *= d
        out[name] = 2 * batch * a_shape[-2] * a_shape[-1] * b_shape[-1] / best
    return out


# --------------------------------------------------------------------------- parent: orchestration

def _child(args: list[str], python: str = sys.executable, timeout: float = 1800) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run([python, *args], capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        # Reported, not fatal: a point can hang at 0% CPU (the XLA:CPU deadlock; seen at 256 seeds).
        return {"error": f"timed out after {timeout:.0f} s (hung or too slow); the sweep goes on"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        killed = proc.returncode in (-9, 137)
        return {"error": ("killed (likely host out of memory): " if killed else "failed: ") + " | ".join(tail)}
    return json.loads(lines[-1])


def ours(algo: str, num_envs: int, num_seeds: int, total: int, cpu_devices: int = 1) -> dict:
    spec = {"algo": algo, "num_envs": num_envs, "num_seeds": num_seeds, "total_timesteps": total, "cpu_devices": cpu_devices}
    return {**_child([str(Path(__file__)), "--point", json.dumps(spec)]), "cpu_devices": cpu_devices}


def capped_timesteps(algo: str, num_envs: int, num_seeds: int, total: int, max_steps_per_call: int | None) -> int:
    """Env steps per seed for a sweep point, in whole updates: ``total`` rounded down, or fewer
    updates so that all seeds together run at most ``max_steps_per_call`` (never fewer than one)."""
    import purejaxrl_ppo as pjp

    batch = pjp.config_from_dict({"algo": algo, "num_envs": num_envs, "total_timesteps": total}).batch_size
    updates = max(1, total // batch)
    if max_steps_per_call:
        updates = min(updates, max(1, max_steps_per_call // (num_seeds * batch)))
    return updates * batch


def peer_python(name: str) -> str | None:
    python = PEERS[name]["venv"] / "bin" / "python"
    return str(python) if python.exists() else None


def setup_peer(name: str) -> None:
    venv = PEERS[name]["venv"]
    if peer_python(name):
        return
    print(f"creating {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PEERS[name]["install"]], check=True)


def install_hint(name: str) -> str:
    pkgs = " ".join(f"'{p}'" for p in PEERS[name]["install"])
    return (f"python -m venv {PEERS[name]['venv'].relative_to(ROOT)} && "
            f"{PEERS[name]['venv'].relative_to(ROOT)}/bin/pip install {pkgs}   (or pass --setup-peers)")


def rejax_point(num_seeds: int, total: int) -> dict:
    return _child([str(HERE / "peers" / "rejax_ppo.py"), "--num-seeds", str(num_seeds),
                   "--total-timesteps", str(total)], python=peer_python("rejax"))


#: One process per core: no library in an SB3 process may start a thread pool of its own.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def sb3_summed(algo: str, num_seeds: int, total: int, procs: int) -> dict:
    """``num_seeds`` SB3 runs, ``procs`` processes at a time (one per core); summed steps/s."""
    python = peer_python("sb3")
    script = str(HERE / "peers" / "sb3.py")
    start = time.perf_counter()
    results, pending = [], list(range(num_seeds))
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < procs:
            seed = pending.pop(0)
            running.append(subprocess.Popen([python, script, "--algo", algo, "--seed", str(seed),
                                             "--total-timesteps", str(total)], stdout=subprocess.PIPE, text=True,
                                            env={**os.environ, **ONE_THREAD}))
        proc = running.pop(0)
        stdout, _ = proc.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if proc.returncode == 0 and lines:
            results.append(json.loads(lines[-1]))
    wall = time.perf_counter() - start
    if not results:
        return {"error": "every SB3 run failed"}
    return summarise_sb3(results, procs, wall)


def summarise_sb3(runs: list[dict], procs: int, wall: float) -> dict:
    """One peer point from SB3 runs (``peers/sb3.py`` JSON lines) that ran ``procs`` at a time.

    ``env_steps_per_second`` is steady state, as for ours: each run is timed inside ``learn()``
    (no interpreter start, imports or final evaluation) and ``min(procs, len(runs))`` of them run
    at once, so the summed rate is that many times their mean. The wall-clock rate including
    start-up and evaluation is kept as ``wall_env_steps_per_second``.
    """
    import numpy as np

    steps = sum(r["env_steps"] for r in runs)
    per_process = float(np.mean([r["env_steps_per_second"] for r in runs]))
    return {"peer": runs[0]["peer"], "num_seeds": len(runs), "processes": procs, "env_steps": steps,
            "wall_seconds": wall, "env_steps_per_second": min(procs, len(runs)) * per_process,
            "wall_env_steps_per_second": steps / wall, "per_process_env_steps_per_second": per_process,
            "final_return_median": float(np.median([r["final_return"] for r in runs])),
            "final_return_kind": runs[0]["final_return_kind"], "versions": runs[0]["versions"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    series: dict[str, list[tuple[int, float]]] = {}
    for point in results["ours"]:
        if "env_steps_per_second" in point:
            label = f"ours {point['algo'].upper()} ({point['num_envs']} envs{_devices_note(point)})"
            series.setdefault(label, []).append((point["num_seeds"], point["env_steps_per_second"]))
    for point in results["peers"]:
        if "env_steps_per_second" in point:
            series.setdefault(point["peer"], []).append((point["num_seeds"], point["env_steps_per_second"]))
    for label, pts in sorted(series.items()):
        best: dict[int, float] = {}
        for seeds, sps in pts:  # repeats (A B A B): keep the median later; plot the best here
            best[seeds] = max(best.get(seeds, 0.0), sps)
        xs = sorted(best)
        ax.plot(xs, [best[x] for x in xs], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("seeds trained together")
    ax.set_ylabel("env steps / s (steady state, all seeds)")
    ax.set_title(f"CartPole-v1 throughput, {results['machine']['processor']} ({results['machine']['cpu_count']} CPUs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _devices_note(point: dict) -> str:
    """``", 2 CPU devices"`` for a point sharded over several CPU devices, else nothing."""
    count = point.get("cpu_devices", 1)
    return f", {count} CPU devices" if count > 1 else ""


def markdown_table(results: dict) -> str:
    peak = results["matmul_peak_flops_per_second"]["1024^3"]
    rows = ["| program | envs | seeds | steps/seed | steps/s (steady) | first call s | rollout-only ceiling | raw-env ceiling | FLOP/s ÷ 1024³ peak | final return (median) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for p in results["ours"]:
        name = f"| ours {p['algo'].upper()}{_devices_note(p)} | {p['num_envs']} | {p['num_seeds']} | {p.get('total_timesteps', '')}"
        if "error" in p:
            rows.append(f"{name} | {p['error'][:40]} | | | | | |")
            continue
        final = "(capped)" if p.get("steps_capped") else f"{p['final_return_median']:.0f}"
        rows.append(
            f"{name}{'*' if p.get('steps_capped') else ''} | {p['env_steps_per_second']:,.0f} | "
            f"{p['first_call_seconds']:.1f} | {p['env_steps_per_second'] / p['rollout_only_env_steps_per_second']:.0%} | "
            f"{p['env_steps_per_second'] / p['raw_env_steps_per_second']:.1%} | {p['achieved_flops_per_second'] / peak:.1%} | "
            f"{final} |")
    for p in results["peers"]:
        if "error" in p:
            continue
        extra = f" ({p['processes']} procs)" if "processes" in p else ""
        first = f"{p['first_call_seconds']:.1f}" if "first_call_seconds" in p else ""
        rows.append(f"| {p['peer']}{extra} | 4 | {p['num_seeds']} | {p.get('env_steps', 0) // max(p['num_seeds'], 1) or ''} | "
                    f"{p['env_steps_per_second']:,.0f} | {first} | | | | {p['final_return_median']:.0f} |")
    if results.get("max_steps_per_call"):
        rows.append(f"\n\\* fewer updates per seed: at most {results['max_steps_per_call']:,} env steps per timed call "
                    "(`--max-steps-per-call`); steady-state steps/s only, no learning result.")
    return "\n".join(rows)


def _median_sps(points: list[dict], **match) -> float | None:
    import numpy as np

    match.setdefault("cpu_devices", 1)
    values = [p["env_steps_per_second"] for p in points if "env_steps_per_second" in p
              and all(p.get(k, 1 if k == "cpu_devices" else None) == v for k, v in match.items())]
    return float(np.median(values)) if values else None


def _pair_ratio(
    ours: list[dict], peers: list[dict], peer: str, algo: str, num_seeds: int, peer_seeds: bool = True,
    cpu_devices: int = 1,
) -> float | None:
    """Median over A/B pairs of ours at ``num_seeds`` / ``peer`` steady-state steps/s, each pair from one
    invocation. ``peer_seeds=False`` pairs a peer point of any seed count (SB3: one seed per process, summed)."""
    import numpy as np

    ratios = []
    for b in peers:
        if b.get("peer") != peer or "env_steps_per_second" not in b:
            continue
        if peer_seeds and b.get("num_seeds") != num_seeds:
            continue
        a = _median_sps(ours, algo=algo, num_seeds=num_seeds, ab_pair=b.get("ab_pair"), cpu_devices=cpu_devices)
        if a:
            ratios.append(a / b["env_steps_per_second"])
    return float(np.median(ratios)) if ratios else None


def targets(results: dict) -> dict:
    """Issue 3's targets, from the measured points (None where a point is missing)."""
    ours, peers = results["ours"], results["peers"]
    out: dict = {}
    # Per CPU device count (--cpu-devices; 1 when not given), the untagged names for one device:
    # several devices are ours with one device per core, as SB3 gets one process per core.
    for count in sorted({1} | {p.get("cpu_devices", 1) for p in ours}):
        tag = f"_{count}_cpu_devices" if count > 1 else ""
        for seeds in (16, 64):
            out[f"ppo{tag}_over_rejax_{seeds}_seeds (target >= 1.2)"] = _pair_ratio(
                ours, peers, "rejax PPO", "ppo", seeds, cpu_devices=count)
        for seeds in sorted({p["num_seeds"] for p in ours}):
            a = _median_sps(ours, algo="trpo", num_envs=4, num_seeds=seeds, cpu_devices=count)
            b = _median_sps(ours, algo="ppo", num_envs=4, num_seeds=seeds, cpu_devices=count)
            if a and b:
                out[f"trpo_over_ppo{tag}_{seeds}_seeds (target >= 0.8)"] = a / b
        # SB3 runs one seed per process: ours at 64 seeds against the summed processes.
        out[f"trpo{tag}_64_seeds_over_sb3_contrib_trpo_summed (target >= 25)"] = _pair_ratio(
            ours, peers, "sb3-contrib TRPO", "trpo", 64, peer_seeds=False, cpu_devices=count)
        out[f"ppo{tag}_64_seeds_over_sb3_ppo_summed"] = _pair_ratio(
            ours, peers, "Stable-Baselines3 PPO", "ppo", 64, peer_seeds=False, cpu_devices=count)
    for point in peers:
        if point.get("peer") == "rejax PPO" and "final_return_median" in point:
            mine = [p["final_return_median"] for p in ours if p.get("ab_pair") == point.get("ab_pair")
                    and p.get("num_seeds") == point["num_seeds"] and "final_return_median" in p
                    and p.get("cpu_devices", 1) == 1]
            if mine:
                out[f"final_return_ours_vs_rejax_{point['num_seeds']}_seeds (target within 2%)"] = [mine[0], point["final_return_median"]]
    compile_s = [p["compile_seconds"] for p in ours if p.get("algo") == "ppo" and "compile_seconds" in p]
    out["ppo_compile_seconds_max (target <= 5)"] = max(compile_s) if compile_s else None
    peak = results["matmul_peak_flops_per_second"]["1024^3"]
    out["utilisation_vs_1024^3_peak"] = {
        f"{p['algo']} envs={p['num_envs']} seeds={p['num_seeds']}": p["achieved_flops_per_second"] / peak
        for p in ours if "achieved_flops_per_second" in p and "ab_pair" not in p}
    return out


def save_partial(results: dict, out: Path) -> None:
    """Write what has been measured so far (a long sweep that is interrupted keeps its points)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.partial.json").write_text(json.dumps(results, indent=2) + "\n")


#: Peers measured by their own script in ``peers/`` (its own process: each imports purejaxrl_ppo first and
#: runs both programs in that one process, alternated A B B A); results go to ``<out>/<peer>.json``.
SCRIPT_PEERS = {
    "purejaxrl": "purejaxrl.py",  # PureJaxRL's ppo.py / ppo_continuous_action.py from --purejaxrl-dir
    "brax-ppo": "brax_ppo.py",  # brax.training.agents.ppo.train
}


#: Same-process median ratio ours/PureJaxRL each config must reach (issue 15); cold compile <= PureJaxRL's.
PUREJAXRL_TARGETS = {"cartpole": 1.2, "minatar": 1.1, "brax": 1.1}


def script_peer_targets(results: dict, out: Path) -> dict:
    """The PureJaxRL and Brax-trainer targets, read from the script peers' JSON in ``out``."""
    found: dict = {}
    pjx_file, brax_file = out / "purejaxrl.json", out / "brax_ppo.json"
    if "purejaxrl" in results.get("script_peers", {}) and pjx_file.exists():
        pjx = json.loads(pjx_file.read_text())
        for point in pjx["same_process"]:
            name, seeds = point["config"], point["num_seeds"]
            target = PUREJAXRL_TARGETS[name] if name != "cartpole" or seeds > 1 else None
            label = f"ppo_over_purejaxrl_{name}_{seeds}_seeds_same_process" + (f" (target >= {target})" if target else "")
            found[label] = point["median_pair_ratio"]
            compile_s = {k: v["seconds"] for k, v in point["compile"].items()}
            found[f"compile_seconds_{name}_{seeds}_seeds_ours_vs_purejaxrl (target ours <= theirs)"] = [
                compile_s.get("ours"), compile_s.get("purejaxrl")]
        for point in pjx["separate_process"]:
            name, seeds = point["config"], point["num_seeds"]
            found[f"ppo_over_purejaxrl_{name}_{seeds}_seeds_separate_processes"] = point["ratio"]
            found[f"compile_seconds_{name}_{seeds}_seeds_separate_processes_ours_vs_purejaxrl (target ours <= theirs)"] = [
                point[p].get("compile", {}).get("seconds") for p in ("ours", "purejaxrl")]
    if "brax-ppo" in results.get("script_peers", {}) and brax_file.exists():
        for point in json.loads(brax_file.read_text())["comparisons"]:
            found[f"ppo_over_brax_trainer_{point['num_seeds']}_seeds (target >= 1.1)"] = point["ratio_median"]
    return found


def run_script_peer(peer: str, args: argparse.Namespace) -> dict:
    """Run ``peers/<script>`` for ``peer`` with this run's seeds, rounds and cap; returns its summary."""
    out = args.out / f"{peer.replace('-', '_')}.json"
    command = [sys.executable, str(HERE / "peers" / SCRIPT_PEERS[peer]), "--out", str(out),
               "--seeds", *map(str, args.peer_seeds), "--rounds", str(args.repeats)]
    if peer == "purejaxrl":
        if not args.purejaxrl_dir:
            return {"skipped": "needs --purejaxrl-dir (a checkout or bare git dir of luchris429/purejaxrl)"}
        command += ["--purejaxrl-dir", str(args.purejaxrl_dir)]
        if args.max_steps_per_call:
            command += ["--max-steps-per-call", str(args.max_steps_per_call)]
    command += shlex.split(getattr(args, peer.replace("-", "_") + "_args"))
    print("running", " ".join(command), flush=True)
    result = subprocess.run(command, check=False, cwd=ROOT)
    summary = {"command": command, "returncode": result.returncode, "out": str(out.relative_to(ROOT))
               if out.is_relative_to(ROOT) else str(out)}
    if result.returncode == 0 and out.exists():
        summary["table_markdown"] = json.loads(out.read_text()).get("table_markdown")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["ppo", "trpo"], choices=["ppo", "trpo"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 16, 64, 256, 1024, 4096],
                        help="num_seeds sweep (a point that runs out of memory is reported and the sweep goes on; "
                             "none: only the peer pairs)")
    parser.add_argument("--cpu-devices", nargs="+", type=int, default=[1],
                        help="measure ours with the CPU split into each of these numbers of XLA devices "
                             "(pjp.use_cpu_devices; the seeds sharded over them as train_seeds does)")
    parser.add_argument("--num-envs", nargs="+", type=int, default=[4], help="num_envs sweep (rollout size = num_envs x 128)")
    parser.add_argument("--total-timesteps", type=int, default=500_000, help="env steps per seed (ours and rejax)")
    parser.add_argument("--max-steps-per-call", type=int, default=None,
                        help="sweep points: fewer updates per seed so one timed call runs at most this many env "
                             "steps over all seeds (steady-state steps/s only; peers' A/B pairs are not capped)")
    parser.add_argument("--peers", nargs="*", default=["rejax", "sb3-ppo", "sb3-trpo"],
                        choices=["rejax", "sb3-ppo", "sb3-trpo", *SCRIPT_PEERS])
    parser.add_argument("--purejaxrl-dir", default=os.environ.get("PUREJAXRL_DIR"),
                        help="PureJaxRL checkout or bare git dir for --peers purejaxrl (default: $PUREJAXRL_DIR)")
    parser.add_argument("--purejaxrl-args", default="",
                        help="extra arguments for peers/purejaxrl.py in one string, e.g. '--brax-seeds 1 --separate'")
    parser.add_argument("--brax-ppo-args", default="",
                        help="extra arguments for peers/brax_ppo.py in one string (later ones win, e.g. '--seeds 1 4')")
    parser.add_argument("--peer-seeds", nargs="+", type=int, default=[1, 16, 64], help="seeds for the ours-vs-rejax A/B")
    parser.add_argument("--sb3-seeds", type=int, default=4, help="SB3 runs per peer (one process per core at a time)")
    parser.add_argument("--sb3-timesteps", type=int, default=50_000, help="env steps per SB3 run")
    parser.add_argument("--repeats", type=int, default=2, help="A B A B repeats of each ours-vs-peer pair")
    parser.add_argument("--setup-peers", action="store_true", help=f"create missing peer venvs under {VENVS}")
    parser.add_argument("--quick", action="store_true", help="small budgets, 1 and 16 seeds, no peers")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--processes", type=int, default=None, metavar="N",
                        help="instead of the sweep: 1 process x 1 device vs 1 process x N devices vs N processes "
                             "x 1 device (jax.distributed), CartPole PPO at 2 and 64 seeds, interleaved rounds "
                             "(benchmarks/processes.py; only --quick and --out apply) -> <out>/processes.json/md")
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        print(json.dumps(run_point(json.loads(args.point))))
        return
    if args.processes is not None:
        sys.path.insert(0, str(HERE))
        import processes

        processes.main(["--processes", str(args.processes), "--out", str(args.out), *(["--quick"] * args.quick)],
                       command=shlex.join(["python", "benchmarks/throughput.py", *(argv or sys.argv[1:])]))
        return
    if args.quick:
        args.seeds, args.total_timesteps, args.peers, args.repeats = [1, 16], 16_384, [], 1
        args.peer_seeds = [1, 16]

    import purejaxrl_ppo  # noqa: F401
    from purejaxrl_ppo.runs.provenance import machine_description

    results = {"command": shlex.join(["python", "benchmarks/throughput.py", *(argv or sys.argv[1:])]),
               "machine": machine_description(), "total_timesteps_per_seed": args.total_timesteps,
               "flops_method": "achieved FLOP/s = analytic matmul FLOPs per env step (forward + 3x forward per "
                               "training pass) x steady env-steps/s. Also recorded: XLA cost_analysis() of one "
                               "vmapped update / env steps per update, which counts each inner loop body (rollout "
                               "step, minibatch step) once and so undercounts",
               "max_steps_per_call": args.max_steps_per_call,
               "ours": [], "peers": [], "skipped": {}}
    results["matmul_peak_flops_per_second"] = matmul_peak()
    print("matmul peak GFLOP/s:", {k: round(v / 1e9, 1) for k, v in results["matmul_peak_flops_per_second"].items()}, flush=True)

    for algo in args.algos:
        for num_envs in args.num_envs:
            for seeds in args.seeds:
                total = capped_timesteps(algo, num_envs, seeds, args.total_timesteps, args.max_steps_per_call)
                full = capped_timesteps(algo, num_envs, seeds, args.total_timesteps, None)
                for cpu_devices in args.cpu_devices:
                    point = ours(algo, num_envs, seeds, total, cpu_devices)
                    point.update(algo=algo, num_envs=num_envs, num_seeds=seeds, total_timesteps=total,
                                 steps_capped=total < full)
                    results["ours"].append(point)
                    print(json.dumps(point), flush=True)
                    save_partial(results, args.out)

    wanted = {"rejax": "rejax", "sb3-ppo": "sb3", "sb3-trpo": "sb3"}
    for peer in [p for p in args.peers if p in SCRIPT_PEERS]:
        results["script_peers"] = {**results.get("script_peers", {}), peer: run_script_peer(peer, args)}
    for peer in [p for p in args.peers if p not in SCRIPT_PEERS]:
        venv = wanted[peer]
        if args.setup_peers:
            setup_peer(venv)
        if not peer_python(venv):
            results["skipped"][peer] = "not installed: " + install_hint(venv)
            print(f"skipping {peer}: {results['skipped'][peer]}", flush=True)
            continue
        for repeat in range(args.repeats):  # A B A B: ours then the peer, twice
            if peer == "rejax":
                for seeds in args.peer_seeds:
                    for cpu_devices in args.cpu_devices:
                        a = ours("ppo", 4, seeds, args.total_timesteps, cpu_devices)
                        a.update(algo="ppo", num_envs=4, num_seeds=seeds, ab_pair=f"rejax/{repeat}")
                        results["ours"].append(a)
                        print(json.dumps(a), flush=True)
                    b = rejax_point(seeds, args.total_timesteps)
                    b.update(ab_pair=f"rejax/{repeat}")
                    results["peers"].append(b)
                    print(json.dumps(b), flush=True)
                    save_partial(results, args.out)
            else:
                algo = peer.split("-")[1]
                for cpu_devices in args.cpu_devices:
                    a = ours(algo, 4, 64, args.total_timesteps, cpu_devices)
                    a.update(algo=algo, num_envs=4, num_seeds=64, ab_pair=f"{peer}/{repeat}")
                    results["ours"].append(a)
                    print(json.dumps(a), flush=True)
                b = sb3_summed(algo, args.sb3_seeds, args.sb3_timesteps, os.cpu_count() or 1)
                b.update(ab_pair=f"{peer}/{repeat}")
                results["peers"].append(b)
                print(json.dumps(b), flush=True)
                save_partial(results, args.out)

    results["targets"] = {**targets(results), **script_peer_targets(results, args.out)}
    print(json.dumps(results["targets"], indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "throughput.png")
    table = markdown_table(results)
    (args.out / "throughput.md").write_text(table + "\n")
    (args.out / "throughput.partial.json").unlink(missing_ok=True)
    print("\n" + table)
    print(f"\nwrote {args.out / 'throughput.json'}, {args.out / 'throughput.png'}, {args.out / 'throughput.md'}")


if __name__ == "__main__":
    main()
