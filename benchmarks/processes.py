"""Processes vs devices vs one device: one CartPole PPO job laid out three ways, timed in one run (issue 19).

    python benchmarks/processes.py                  # 2 and 64 seeds, 3 rounds, 2 processes (~10 min, 2 cores)
    python benchmarks/processes.py --quick          # smoke test: 2 seeds, small budget, 1 round (< 2 min)
    python benchmarks/throughput.py --processes 2   # the same comparison, from the throughput benchmark

The layouts, each a fresh job (new processes, cold compile), N from ``--processes``:

* ``1x1``: 1 process x 1 XLA CPU device (a plain subprocess);
* ``1xN``: 1 process x N devices (``--xla_force_host_platform_device_count=N``);
* ``Nx1``: N processes x 1 device each, one ``jax.distributed`` job (gloo collectives) started with
  :func:`purejaxrl_ppo.launch.processes.launch`.

Every layout runs ``train_seeds``' own program over every device of the job
(``train_program(config, seed_layout(num_seeds))``, keys placed with ``SeedLayout.put``, results gathered
with ``SeedLayout.take``), with PureJaxRL's CartPole-v1 PPO config (4 envs x 128 steps per update) and a
per-seed budget chosen so that one call runs a few seconds. In each job: compile time (``lower().compile()``,
wall and process CPU seconds, every process's), the first call (compile + run, wall), then ``--calls - 1``
further calls of the same compiled program; the steady state is the median of those calls, in env steps per
second over all seeds. Each timed call starts and ends at a barrier (``distributed.sync``; a no-op with one
process), so it lasts until the slowest process is done; the cost of one bare barrier is recorded, and so is
the time ``SeedLayout.take`` needs to bring every seed's results to every process (a gloo all-gather with
several processes, nothing with one; timed twice, as the first take compiles its all-gather). Compiles
during the steady calls are counted (expected: 0), and so are the CPU cores that other processes of the
machine used during each job (the noise on a shared machine).

Rounds are interleaved (1x1, 1xN, Nx1, 1x1, 1xN, Nx1, ...) so that a slow patch of a shared machine hits
every layout; ratios are medians of per-round ratios. Process 0 of a job writes its result as one JSON file
at a path the parent passes (its stdout also carries gloo's own lines, so it is not parsed).

Writes ``<out>/processes.json`` (every job, the summary, machine and command) and ``<out>/processes.md``
(``processes_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import freshness  # noqa: E402  (benchmarks/ is not a package)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Env steps per seed for each seed count of the full run: one call is ~2-7 s on the 2-core development VM.
FULL_BUDGETS = {2: 256 * 512, 64: 16 * 512}
QUICK_BUDGETS = {2: 16 * 512}


# --------------------------------------------------------------------------- one job (every process runs this)

def _timed_call(train, keys, name: str) -> tuple[object, float]:
    """Run ``train(keys)`` between two barriers; return its output and the wall seconds, slowest process's."""
    import jax

    from purejaxrl_ppo.launch import distributed

    distributed.sync(name + "/start")
    start = time.perf_counter()
    out = jax.block_until_ready(train(keys))
    distributed.sync(name + "/end")
    return out, time.perf_counter() - start


def _barrier_seconds(repeats: int = 5) -> float:
    """Median wall seconds of one bare barrier (after a first, untimed one compiles it); 0 with one process."""
    from purejaxrl_ppo.launch import distributed

    distributed.sync("barrier/warm")
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        distributed.sync(f"barrier/{i}")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _count_compiles() -> list[float]:
    """A list that every later XLA backend compile of this process appends its duration (s) to."""
    import jax
    from jax._src.dispatch import BACKEND_COMPILE_EVENT

    durations: list[float] = []

    def listen(event: str, duration: float, *args, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            durations.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    return durations


def _per_process(values: list[float]) -> list[list[float]]:
    """``values`` of every process, ``[processes][len(values)]`` (an all-gather; as is with one process)."""
    import numpy as np

    from purejaxrl_ppo.launch import distributed

    if distributed.process_count() == 1:
        return [list(values)]
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray(values, np.float64))).tolist()


def _compile_and_first_call(train, keys) -> tuple[object, dict]:
    """Compile ``train`` for ``keys`` and run it once; its output and the seconds (wall, compile CPU)."""
    from purejaxrl_ppo.launch import distributed

    distributed.sync("ready")
    ready, cpu_start = time.perf_counter(), time.process_time()
    train.lower(keys).compile()  # warms jit's cache: the calls below compile nothing
    times = {"compile_seconds_here": time.perf_counter() - ready,
             "compile_cpu_seconds_here": time.process_time() - cpu_start}
    result, times["first_call_run_seconds"] = _timed_call(train, keys, "call/0")
    times["first_call_seconds"] = time.perf_counter() - ready  # ready -> first results on every process
    return result, times


def _steady_calls(train, keys, result, calls: int) -> tuple[object, dict]:
    """``calls`` more calls of the compiled ``train``; the last output, their seconds and compiles (0 expected)."""
    compiles = _count_compiles()
    seconds = []
    for i in range(calls):
        del result  # one output alive at a time
        result, took = _timed_call(train, keys, f"call/{i + 1}")
        seconds.append(took)
    return result, {"steady_call_seconds": seconds, "steady_seconds": statistics.median(seconds),
                    "compiles_during_steady_calls": len(compiles)}


def _gathered(layout, result) -> tuple[object, dict]:
    """``layout.take(result)`` as NumPy, timed twice (the first take compiles its all-gather): seconds."""
    import jax

    times = {}
    for name in ("gather_seconds_first", "gather_seconds"):
        start = time.perf_counter()
        gathered = jax.device_get(layout.take(result))
        times[name] = time.perf_counter() - start
    return gathered, times


def measure(spec: dict) -> dict:
    """Time one job of ``spec`` (num_seeds, num_envs, total_timesteps per seed, calls) over every device.

    Runs in every process of the job (after ``distributed.initialize_from_environment``); returns the same
    keys everywhere (process 0's are kept). Seconds are wall seconds unless named ``cpu``; ``*_here`` are
    this process's own, ``*_per_process`` every process's.
    """
    import purejaxrl_ppo as pjp  # before jax computes anything: the XLA:CPU workarounds
    from purejaxrl_ppo.launch import distributed

    distributed.initialize_from_environment()
    import jax
    import numpy as np

    from purejaxrl_ppo.launch.layout import seed_layout
    from purejaxrl_ppo.launch.programs import train_program

    config = pjp.config_from_dict({"algo": "ppo", "num_envs": spec["num_envs"],
                                   "total_timesteps": spec["total_timesteps"]})
    layout = seed_layout(spec["num_seeds"])
    keys = layout.put(jax.random.split(jax.random.PRNGKey(0), layout.num_seeds))
    train = train_program(config, layout)
    out = {"num_updates": config.num_updates, "devices": jax.device_count(), "processes": jax.process_count(),
           "env_steps": spec["num_seeds"] * config.num_updates * config.batch_size,
           "barrier_seconds": _barrier_seconds()}
    result, times = _compile_and_first_call(train, keys)
    out.update(times)
    result, times = _steady_calls(train, keys, result, spec["calls"] - 1)
    out.update(times, env_steps_per_second=out["env_steps"] / times["steady_seconds"])
    gathered, times = _gathered(layout, result)
    out.update(times)
    out["final_return_median"] = float(np.nanmedian(pjp.final_returns(gathered.metrics["episode_return"])))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_process = _per_process([out.pop("compile_seconds_here"), out.pop("compile_cpu_seconds_here"), rss_mb])
    out["compile_seconds_per_process"] = [p[0] for p in per_process]
    out["compile_cpu_seconds_per_process"] = [p[1] for p in per_process]
    out["peak_rss_mb_per_process"] = [p[2] for p in per_process]
    out["compile_seconds"] = max(out["compile_seconds_per_process"])  # the job waits for its slowest process
    return out


def _write_json(path: Path, value: dict) -> None:
    """Write ``value`` to ``path`` atomically (the parent never reads half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value) + "\n")
    tmp.replace(path)


def child_main(spec: dict, result: Path) -> None:
    """``--point SPEC --result PATH``: measure; process 0 alone writes the result."""
    out = measure(spec)
    from purejaxrl_ppo.launch import distributed

    if distributed.is_primary():
        _write_json(result, out)


# --------------------------------------------------------------------------- parent: start the jobs

def layouts(processes: int) -> list[dict]:
    """The three layouts compared: 1 process x 1 device, 1 x N devices, N processes x 1 device."""
    return [{"name": "1x1", "processes": 1, "devices_per_process": 1},
            {"name": f"1x{processes}", "processes": 1, "devices_per_process": processes},
            {"name": f"{processes}x1", "processes": processes, "devices_per_process": 1}]


def _single_process_env(devices: int) -> dict[str, str]:
    """Our environment with ``devices`` XLA CPU devices and no process-group variables (so no jax.distributed)."""
    from purejaxrl_ppo.launch.processes import (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID,
                                                process_environments)

    env = process_environments(1, devices, 0, os.environ)[0]
    for name in (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID):
        env.pop(name, None)
    return env


def _children(parent: int) -> list[int]:
    """Pids of the live processes whose parent is ``parent`` (from ``/proc``)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            pids.append(int(stat.parent.name))
    return pids


@contextlib.contextmanager
def _watchdog(seconds: float):
    """SIGKILL this process's children if the block runs longer than ``seconds`` (a hung XLA:CPU job);
    yields a list that holds True once that happened."""
    fired: list[bool] = []

    def kill() -> None:
        fired.append(True)
        for pid in _children(os.getpid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(seconds, kill)
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


@contextlib.contextmanager
def _output_to(path: Path):
    """File descriptors 1 and 2 (inherited by the processes started inside) redirected to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _tail(path: Path, lines: int = 3) -> str:
    """The last ``lines`` lines of a job's output (gloo's connection lines left out), joined with ``|``."""
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join([line for line in text if not line.startswith("[Gloo]")][-lines:])


def _busy_cpu_seconds() -> float:
    """CPU seconds every process of the machine has used since boot (``/proc/stat``: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's reaped children (a job's processes, once it ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def _others_load():
    """Yields a dict that gets ``other_processes_cores``: the cores, on average over the block, that processes
    other than this one's children used (the other load on a shared machine; ~0 on a quiet one)."""
    found: dict = {}
    start, busy, ours = time.perf_counter(), _busy_cpu_seconds(), _children_cpu_seconds()
    try:
        yield found
    finally:
        others = (_busy_cpu_seconds() - busy) - (_children_cpu_seconds() - ours)
        found["other_processes_cores"] = max(0.0, others) / max(time.perf_counter() - start, 1e-9)


def run_job(layout: dict, spec: dict, timeout: float) -> dict:
    """One job of ``spec`` in ``layout``: fresh processes; process 0's result, or ``{"error": ...}``."""
    with tempfile.TemporaryDirectory(prefix="processes-bench-") as tmp:
        result, log = Path(tmp) / "result.json", Path(tmp) / "output.log"
        argv = ["--point", json.dumps(spec), "--result", str(result)]
        program = [sys.executable, str(Path(__file__).resolve())]
        start = time.perf_counter()
        with _others_load() as load, _output_to(log), _watchdog(timeout) as fired:
            if layout["processes"] == 1:
                code = subprocess.run([*program, *argv], env=_single_process_env(layout["devices_per_process"]),
                                      check=False).returncode
            else:
                from purejaxrl_ppo.launch.processes import launch

                code = launch(argv, layout["processes"], layout["devices_per_process"], program=program,
                              stream_prefix=True)
        done = {"job_wall_seconds": time.perf_counter() - start, **load}
        if code == 0 and result.exists():
            return {**json.loads(result.read_text()), **done}
        why = f"timed out after {timeout:.0f} s (killed)" if fired else f"exit code {code}"
        return {"error": f"{why}: {_tail(log)}", **done}


# --------------------------------------------------------------------------- parent: rounds, summary, files

def budget(num_seeds: int, steps_per_call: int, batch_size: int = 4 * 128) -> int:
    """Env steps per seed, in whole updates of ``batch_size``, so that one call of all seeds runs about
    ``steps_per_call`` env steps (at least one update per seed)."""
    return max(1, steps_per_call // (num_seeds * batch_size)) * batch_size


def machine() -> dict:
    """Where it ran: CPU model and cores, jax/jaxlib/Python versions, OS, local date and time (no jax started)."""
    with open("/proc/cpuinfo") as info:
        model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                     platform.processor())
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "available_cores": len(os.sched_getaffinity(0)),
            "jax_version": metadata.version("jax"), "jaxlib_version": metadata.version("jaxlib"),
            "python": platform.python_version(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "code": freshness.code_version()}


def run_rounds(args: argparse.Namespace) -> list[dict]:
    """Every job, rounds interleaved: for each round, for each seed count, 1x1, 1xN, Nx1."""
    jobs = []
    for round_ in range(args.rounds):
        for seeds in args.seeds:
            spec = {"num_seeds": seeds, "num_envs": 4, "calls": args.calls,
                    "total_timesteps": budget(seeds, args.steps_per_call)}
            for layout in layouts(args.processes):
                job = run_job(layout, spec, args.timeout)
                job.update(round=round_, layout=layout["name"], spec=spec)
                jobs.append(job)
                shown = {k: job.get(k) for k in ("layout", "round", "error", "env_steps_per_second", "compile_seconds",
                                                 "first_call_seconds", "steady_call_seconds", "gather_seconds",
                                                 "other_processes_cores")}
                print(json.dumps({"num_seeds": seeds, **shown}), flush=True)
    return jobs


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _round_ratios(jobs: list[dict], seeds: int, top: str, bottom: str) -> list[float]:
    """Per round: steady steps/s of layout ``top`` / that of ``bottom`` (rounds where both measured)."""
    by_round: dict[int, dict[str, float]] = {}
    for job in jobs:
        if job["spec"]["num_seeds"] == seeds and "env_steps_per_second" in job:
            by_round.setdefault(job["round"], {})[job["layout"]] = job["env_steps_per_second"]
    return [r[top] / r[bottom] for r in by_round.values() if top in r and bottom in r]


def summarize(jobs: list[dict], processes: int, seed_counts: list[int]) -> list[dict]:
    """One row per (seed count, layout): medians over rounds; steps/s, ratios, seconds (wall)."""
    rows = []
    one, devices, group = (layout["name"] for layout in layouts(processes))
    for seeds in seed_counts:
        for name in (one, devices, group):
            done = [j for j in jobs if j["spec"]["num_seeds"] == seeds and j["layout"] == name and "error" not in j]
            sps = [j["env_steps_per_second"] for j in done]
            rows.append({
                "num_seeds": seeds, "layout": name, "rounds_measured": len(done),
                "errors": [j["error"] for j in jobs if j["spec"]["num_seeds"] == seeds and j["layout"] == name
                           and "error" in j],
                "env_steps_per_second_median": _median(sps),
                "env_steps_per_second_min": min(sps, default=None), "env_steps_per_second_max": max(sps, default=None),
                "vs_1x1_median_round_ratio": _median(_round_ratios(jobs, seeds, name, one)),
                "vs_1xN_median_round_ratio": _median(_round_ratios(jobs, seeds, name, devices)),
                "compile_seconds_median": _median([j["compile_seconds"] for j in done]),
                "compile_cpu_seconds_median": _median([max(j["compile_cpu_seconds_per_process"]) for j in done]),
                "gather_seconds_first_median": _median([j["gather_seconds_first"] for j in done]),
                "first_call_seconds_median": _median([j["first_call_seconds"] for j in done]),
                "gather_seconds_median": _median([j["gather_seconds"] for j in done]),
                "barrier_seconds_median": _median([j["barrier_seconds"] for j in done]),
                "final_return_median": _median([j["final_return_median"] for j in done]),
                "other_processes_cores_max": max((j["other_processes_cores"] for j in done), default=None),
                "env_steps_per_call": done[0]["env_steps"] if done else None,
            })
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(results: dict) -> str:
    """The table for the README: one row per (seed count, layout), then the ratios."""
    n = results["processes"]
    m = results["machine"]
    lines = [f"CartPole-v1 PPO (PureJaxRL config), `train_seeds`' program; {m['cpu_model']}, {m['cpu_count']} cores, "
             f"jax {m['jax_version']}, {m['date']}. `{results['command']}`: {results['rounds']} interleaved rounds, "
             f"{results['calls']} calls per job (first = compile + run; steady = median of the rest); medians over "
             "rounds, [min-max]; ratios are medians of per-round ratios; others' cores: CPU cores other processes of "
             "the machine used during a job (0 on a quiet machine).", "",
             f"| seeds | layout (processes x devices) | env steps per call | steady env-steps/s | [min-max] | vs 1x1 "
             f"| compile s | first call s | gather s | barrier ms | others' cores (max) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["summary"]:
        lines.append(
            f"| {row['num_seeds']} | {row['layout']} | {_fmt(row['env_steps_per_call'], ',')} "
            f"| {_fmt(row['env_steps_per_second_median'], ',.0f')} "
            f"| {_fmt(row['env_steps_per_second_min'], ',.0f')}-{_fmt(row['env_steps_per_second_max'], ',.0f')} "
            f"| {_fmt(row['vs_1x1_median_round_ratio'], '.2f')} | {_fmt(row['compile_seconds_median'], '.1f')} "
            f"| {_fmt(row['first_call_seconds_median'], '.1f')} | {_fmt(row['gather_seconds_median'], '.3f')} "
            f"| {_fmt(None if row['barrier_seconds_median'] is None else 1e3 * row['barrier_seconds_median'], '.2f')} "
            f"| {_fmt(row['other_processes_cores_max'], '.2f')} |")
    lines.append("")
    for row in results["summary"]:
        if row["layout"] == f"{n}x1":
            lines.append(f"- {row['num_seeds']} seeds: {n} processes x 1 device / 1 process x {n} devices = "
                         f"{_fmt(row['vs_1xN_median_round_ratio'], '.2f')}")
    errors = [f"- {row['num_seeds']} seeds, {row['layout']}: {e}" for row in results["summary"] for e in row["errors"]]
    return "\n".join(lines + (["", "Errors:", *errors] if errors else []))


def main(argv: list[str] | None = None, command: str | None = None) -> None:
    """Parse ``argv``, run every job (or, with ``--point``, be one process of one job), write the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, metavar="N",
                        help="N: compare 1x1, 1xN devices and N processes x 1 device [default: 2]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 64], help="seed counts [default: 2 64]")
    parser.add_argument("--steps-per-call", type=int, default=2 ** 19,
                        help="env steps of one call over all seeds (sets the per-seed budget) [default: 524288]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every layout [default: 3]")
    parser.add_argument("--calls", type=int, default=3, help="calls per job: the first + steady ones [default: 3]")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a job is killed [default: 600]")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 seeds, 16384 steps per call, 1 round, 2 calls; writes processes_quick.*")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--point", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        child_main(json.loads(args.point), args.result)
        return
    if args.processes < 2:
        parser.error("--processes must be >= 2 (1 process is the 1x1 layout)")
    if args.quick:
        args.seeds, args.steps_per_call, args.rounds, args.calls = [2], 2 ** 14, 1, 2
    results = {"command": command or shlex.join(["python", "benchmarks/processes.py", *(sys.argv[1:] if argv is None
                                                                                        else argv)]),
               "machine": machine(), "processes": args.processes, "rounds": args.rounds, "calls": args.calls,
               "config": {"algo": "ppo", "env_name": "CartPole-v1", "num_envs": 4, "num_steps": 128},
               "units": "seconds are wall seconds (cpu: process CPU seconds); env_steps_per_second over all seeds"}
    results["jobs"] = run_rounds(args)
    results["summary"] = summarize(results["jobs"], args.processes, args.seeds)
    table = markdown(results)
    results["table_markdown"] = table
    stem = "processes_quick" if args.quick else "processes"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(table + "\n")
    print("\n" + table + f"\n\nwrote {args.out / (stem + '.json')}, {args.out / (stem + '.md')}")


if __name__ == "__main__":
    main()
