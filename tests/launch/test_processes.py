"""Several ``jax.distributed`` processes on localhost (gloo collectives, one CPU device each).

* ``train_seeds`` over two processes equals the one-process two-device run, bit for bit;
* ``launch --processes 2 -- train`` writes one run directory equal to the one-process run's
  (metrics, logs, policy, every checkpoint);
* a process killed mid-run: the survivor exits within a bounded time naming the dead process,
  and ``--resume`` with two processes, or with one, ends equal to the uninterrupted run;
* an exception in process 0 mid-run: it prints the error and exits, process 1 names it and exits;
* a set-up error of process 0 (a non-empty ``--out``) stops the other process too.

The launcher's own supervision (signals, exit codes) is tested on plain scripts in
``test_processes_launcher.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import assert_same_results, checkpoint_states, cli_reference_run, leaves_equal, write_run_file
from purejaxrl_ppo.cli.commands import LOST_PROCESS_EXIT, main
from purejaxrl_ppo.launch.processes import free_port, launch, process_environments
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs.checkpoint import Checkpointer

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
RUN_FILE = """\
algo: ppo
env_name: CartPole-v1
num_envs: 2
num_steps: 16
total_timesteps: 256   # 8 updates
hidden_sizes: [8]
num_minibatches: 2
update_epochs: 1
num_seeds: 3           # 2 devices: padded to 4, the padding dropped
seeds_per_batch: 1     # bit for bit on any device count
seed: 3
chunk_updates: 2       # 4 chunks, a checkpoint after each
keep_checkpoints: 4
"""
LOG_FILES = ("metrics.csv", "metrics_aggregate.csv", "metrics.jsonl", "policy.msgpack", "config.json")

#: ``python killer.py ARGS``: the CLI, where process $KILL_PROCESS SIGKILLs itself (or raises, if $KILL_HOW is
#: ``raise``) at its $KILL_AT-th gather of seeds (two per chunk: metrics, then state; the 6th is chunk 3's state,
#: after process 0 saved checkpoint 4).
KILLER = textwrap.dedent("""\
    import os, signal, sys
    import purejaxrl_ppo.launch.layout as layout
    from purejaxrl_ppo.cli import main
    if os.environ.get("JAX_PROCESS_ID") == os.environ["KILL_PROCESS"]:
        real, calls = layout.gather_seeds, [0]
        def gather(tree):
            calls[0] += 1
            if calls[0] == int(os.environ["KILL_AT"]):
                if os.environ.get("KILL_HOW") == "raise":
                    raise RuntimeError("injected failure")
                os.kill(os.getpid(), signal.SIGKILL)
            return real(tree)
        layout.gather_seeds = gather
    sys.exit(main(sys.argv[1:]))
""")

#: ``python seeds.py OUT``: ``train_seeds`` over every process's devices; each process saves what it got.
SEEDS = textwrap.dedent("""\
    import sys
    import numpy as np
    import purejaxrl_ppo as pjp
    from purejaxrl_ppo.launch import distributed
    distributed.initialize_from_environment()
    import jax
    config = pjp.PPOConfig(num_envs=2, num_steps=16, total_timesteps=128, hidden_sizes=(8,), num_minibatches=2,
                           update_epochs=1)
    out = pjp.train_seeds(config, num_seeds=3, key=jax.random.PRNGKey(7), seeds_per_batch=1)
    assert jax.device_count() == 2, jax.devices()
    leaves = [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
              for x in jax.tree_util.tree_leaves(out)]
    assert leaves[0].shape[0] == 3
    np.savez(f"{sys.argv[1]}-{jax.process_index()}.npz", *leaves)
""")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    return write_run_file(tmp_path_factory, RUN_FILE)


@pytest.fixture(scope="module")
def reference(run_file, tmp_path_factory) -> Path:
    """The uninterrupted one-process run (this process's one device)."""
    return cli_reference_run(run_file, tmp_path_factory)


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Finished, and equal to the reference in metrics, logs, policy and every checkpoint (timings aside)."""
    assert_same_results(run_dir, reference, LOG_FILES)
    ours, theirs = checkpoint_states(run_dir), checkpoint_states(reference)
    assert sorted(ours) == sorted(theirs) == [2, 4, 6, 8]
    for step in ours:
        leaves_equal(ours[step].state, theirs[step].state)
        leaves_equal(ours[step].history, theirs[step].history)


def test_train_seeds_over_two_processes_equals_one_process_with_two_devices(tmp_path):
    script = tmp_path / "seeds.py"
    script.write_text(SEEDS)
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], capture_output=True, text=True,
                         env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"), timeout=240)
    assert one.returncode == 0, one.stderr[-3000:]
    assert launch([str(tmp_path / "two")], processes=2, program=[sys.executable, str(script)]) == 0
    with np.load(tmp_path / "one-0.npz") as a:
        for process in (0, 1):  # every process gets every seed
            with np.load(tmp_path / f"two-{process}.npz") as b:
                assert sorted(a) == sorted(b)
                for name in a:
                    np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_cli_under_the_launcher_equals_the_one_process_run(run_file, reference, tmp_path, capfd):
    out = tmp_path / "two"
    assert launch(["train", "--config", str(run_file), "--out", str(out), "--quiet"], processes=2) == 0
    lines = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
    summary = [line for line in lines if line == str(out / "summary.json")]
    assert summary == [str(out / "summary.json")]  # process 0 alone prints
    # besides, only Gloo's C++ "[Gloo] Rank i is connected to 1 peer ranks. ..." of both processes, which may
    # interleave character by character: no path, nothing else
    assert all(re.fullmatch(r"[\[\]\w\s.:]*", line) for line in lines if line not in summary), lines
    assert_same_run(out, reference)


def _killer(tmp_path: Path) -> Path:
    """:data:`KILLER` written to ``tmp_path``."""
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    return killer


def _start_killer(tmp_path: Path, run_file: Path, out: Path, **extra: str) -> list[subprocess.Popen]:
    """Two CLI processes (no launcher: jax alone must notice a death), one of them doomed by ``extra``."""
    killer = _killer(tmp_path)
    base = _env(KILL_AT="6", PUREJAXRL_PPO_HEARTBEAT_TIMEOUT="5", **extra)
    return [subprocess.Popen([sys.executable, str(killer), "train", "--config", str(run_file), "--out", str(out),
                              "--quiet"], env=env, stderr=subprocess.PIPE, text=True)
            for env in process_environments(2, 1, free_port(), base)]


@pytest.mark.heavy  # ~45 s (a heartbeat timeout, then two resumes): make test-all; make test keeps the exception case
def test_a_killed_process_stops_the_other_and_resume_finishes_on_two_or_one(run_file, reference, tmp_path, capfd):
    out = tmp_path / "killed"
    procs = _start_killer(tmp_path, run_file, out, KILL_PROCESS="1")
    start = time.monotonic()
    survivor_err = procs[0].communicate(timeout=240)[1]
    procs[1].wait(timeout=60)
    assert procs[1].returncode == -9
    assert procs[0].returncode == LOST_PROCESS_EXIT, survivor_err[-3000:]
    errors = [line for line in survivor_err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "process(es) 1 of the group died" in errors[0], survivor_err[-3000:]
    assert f"--resume {out}" in errors[0]
    assert time.monotonic() - start < 200
    assert rundir.finished_problem(out) is not None
    assert Checkpointer(out / "checkpoints").steps()[-1] in (4, 6)  # the last complete checkpoint is kept

    both, alone = tmp_path / "resumed-on-two", tmp_path / "resumed-on-one"
    shutil.copytree(out, both)
    shutil.copytree(out, alone)
    capfd.readouterr()
    assert launch(["train", "--resume", str(both), "--quiet"], processes=2) == 0
    assert_same_run(both, reference)
    assert main(["train", "--resume", str(alone), "--quiet"]) == 0
    assert_same_run(alone, reference)


def test_a_set_up_error_of_process_0_stops_every_process(run_file, tmp_path, capfd):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("not a run")
    assert launch(["train", "--config", str(run_file), "--out", str(out), "--quiet"], processes=2) == 2
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and not errors[0].startswith("[process 1]"), err  # process 1 exits quietly
    assert {p.name for p in out.iterdir()} <= {"notes.txt", ".lock"}  # as with one process: no run files


def test_an_exception_in_process_1_mid_run_stops_both_naming_it(run_file, tmp_path):
    out = tmp_path / "failed"
    procs = _start_killer(tmp_path, run_file, out, KILL_PROCESS="1", KILL_HOW="raise")
    start = time.monotonic()
    errs = [proc.communicate(timeout=240)[1] for proc in procs]
    assert time.monotonic() - start < 200
    assert procs[1].returncode == 1, errs[1][-3000:]  # an unexpected error: its traceback, then the consequence
    assert "RuntimeError: injected failure" in errs[1]
    assert "error: process 1 failed, so every process of the group stops" in errs[1] and f"--resume {out}" in errs[1]
    assert procs[0].returncode == LOST_PROCESS_EXIT, errs[0][-3000:]  # left in a collective: names process 1
    errors = [line for line in errs[0].splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "process(es) 1 of the group died" in errors[0], errs[0][-3000:]
    assert Checkpointer(out / "checkpoints").steps()[-1] == 4  # process 1 failed after checkpoint 4 was saved


@pytest.mark.heavy  # ~25 s; the same exit path as process 1's exception, but jax (not us) stops process 1
def test_an_exception_in_process_0_under_the_launcher_stops_the_job_naming_it(run_file, tmp_path, capfd,
                                                                              monkeypatch):
    """Process 0 hosts jax's coordination service: when it dies, jax itself stops the others at once."""
    killer = _killer(tmp_path)
    out = tmp_path / "failed"
    for name, value in {"KILL_PROCESS": "0", "KILL_HOW": "raise", "KILL_AT": "6"}.items():
        monkeypatch.setenv(name, value)  # launch() passes this process's environment on
    start = time.monotonic()
    code = launch(["train", "--config", str(run_file), "--out", str(out), "--quiet"], processes=2,
                  program=[sys.executable, str(killer)])
    assert time.monotonic() - start < 200
    err = capfd.readouterr().err
    assert code == 1, err[-3000:]
    assert "RuntimeError: injected failure" in err and "error: process 0 failed" in err
    assert "launch: process 0" in err and "exited with code 1" in err, err[-3000:]
    assert Checkpointer(out / "checkpoints").steps()[-1] == 4
