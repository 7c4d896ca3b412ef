"""Fault findings of issue 30 for ``launch`` and ``jax.distributed`` (findings 5-8, 10 and 12).

The launcher's children are tiny Python scripts (no jax) and ``jax.distributed.initialize`` is faked where the
behaviour under test is ours, so the default tests run in seconds; the two tests that train with real
processes are marked ``heavy``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import script
from purejaxrl_ppo.launch import distributed
from purejaxrl_ppo.launch.processes import add_launch_parser, cmd_launch, free_port, launch

ROOT = Path(__file__).resolve().parents[2]



def start_launcher(tmp_path: Path, program: list[str], **kwargs) -> subprocess.Popen:
    """``launch`` in its own process (signals sent to it must not reach pytest), stderr piped."""
    code = (f"import sys; from purejaxrl_ppo.launch.processes import launch; "
            f"sys.exit(launch([{str(tmp_path)!r}], 2, program={program!r}, **{kwargs!r}))")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def wait_for_files(launcher: subprocess.Popen, paths: list[Path], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not all(path.exists() for path in paths):
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)


# ----------------------------------------------------------------------------- 5: Ctrl-C mid-run ends promptly
@pytest.mark.heavy  # real child processes waiting out a grace period: make test-all
@pytest.mark.timeout(60)
def test_5_processes_stuck_after_ctrl_c_are_killed_after_the_grace_period(tmp_path):
    """Both processes stay (as in a collective and in jax's shutdown barrier): SIGKILL, named, after the grace."""
    program = script(tmp_path, """\
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        (OUT / f"ready{ID}").touch()
        time.sleep(60)
    """)
    launcher = start_launcher(tmp_path, program, grace_seconds=1.0)
    try:
        wait_for_files(launcher, [tmp_path / "ready0", tmp_path / "ready1"])
        start = time.monotonic()
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=15) == 137
        assert time.monotonic() - start < 10
    finally:
        launcher.kill()
        err = launcher.communicate()[1]
    for i in range(2):
        assert f"launch: process {i} (pid " in err
    assert "still running 1 s after SIGINT" in err and "sending SIGKILL" in err


def fake_group(monkeypatch, size: int = 2):
    """``distributed.initialize`` with jax's part faked: a group of ``size`` formed at once. Returns the calls
    made (to jax, to ``atexit.register``) and a function restoring the signal handlers and jax's options."""
    import jax

    calls: list[dict] = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(distributed, "_initialized", lambda: False)
    monkeypatch.setattr(distributed, "_group_size", lambda: size)
    monkeypatch.setattr(distributed.atexit, "register", lambda fn: calls.append({"atexit": fn}))
    monkeypatch.setattr(distributed, "_interrupted", [])
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    options = {name: getattr(jax.config, name)
               for name in ("jax_enable_preemption_service", "jax_cpu_collectives_implementation")}
    absl_level = logging.getLogger("absl").level

    def restore():
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for name, value in options.items():
            jax.config.update(name, value)
        logging.getLogger("absl").setLevel(absl_level)

    return calls, restore


@pytest.fixture
def group(monkeypatch):
    calls, restore = fake_group(monkeypatch)
    yield calls
    restore()


def test_5_an_interrupted_process_leaves_at_exit_without_waiting_for_the_others(group, monkeypatch):
    """jax's shutdown barrier waits for processes that are not coming: bounded, then 128 + the signal."""
    import jax

    distributed.initialize("localhost:1", 2, 1, initialization_timeout=5)
    leave = distributed._leave_after_interrupt
    assert {"atexit": leave} in group
    exits = []
    monkeypatch.setattr(distributed.os, "_exit", exits.append)
    monkeypatch.setattr(distributed, "INTERRUPTED_SHUTDOWN_SECONDS", 0.2)
    monkeypatch.setattr(jax.distributed, "shutdown", lambda: time.sleep(30))  # the barrier, never passed
    leave()
    assert exits == []  # not interrupted: jax's own shutdown as usual
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    start = time.monotonic()
    leave()
    assert exits == [130] and time.monotonic() - start < 5


# ----------------------------------------------------------------------------- 6: SIGTERM honoured
def test_6_sigterm_interrupts_a_process_of_a_group(group):
    import jax

    distributed.initialize("localhost:1", 2, 1, initialization_timeout=5)
    assert not jax.config.jax_enable_preemption_service  # its C++ handler would swallow SIGTERM
    assert signal.getsignal(signal.SIGTERM) is distributed._interrupt
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs at the next bytecode
    assert distributed._interrupted == [signal.SIGTERM]


def test_6_a_single_process_keeps_the_default_handlers(monkeypatch):
    _, restore = fake_group(monkeypatch, size=1)
    try:
        before = signal.getsignal(signal.SIGTERM)
        distributed.initialize("localhost:1", 1, 0, initialization_timeout=5)
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        restore()


# ----------------------------------------------------------------------------- 7: unreachable coordinator
@pytest.mark.heavy  # a real process waiting out its --init-timeout: make test-all
@pytest.mark.timeout(60)
def test_7_an_unreachable_coordinator_is_named_in_one_line_within_the_timeout():
    port = free_port()
    code = f"from purejaxrl_ppo.launch import distributed; distributed.initialize('localhost:{port}', 2, 1, 1.5)"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop(distributed.ENV_COORDINATOR, None)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=45)
    assert done.returncode == distributed.INIT_FAILED_EXIT, done.stderr
    assert time.monotonic() - start < 30
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: jax.distributed: process 1 could not reach the coordinator at "
                               f"localhost:{port} within 1.5 s")


def test_7_the_timeout_reaches_jax_and_the_launcher_passes_its_flag_on(group, tmp_path, capfd):
    distributed.initialize("localhost:1", 2, 1, initialization_timeout=7)
    jax_call = next(call for call in group if "coordinator_address" in call)
    assert jax_call["initialization_timeout"] > 7  # jax's is a backstop; ours speaks first
    assert distributed.INIT_TIMEOUT_SECONDS <= 300
    with pytest.raises(ValueError, match="initialization_timeout must be > 0"):
        distributed.initialize("localhost:1", 2, 1, initialization_timeout=0)

    program = script(tmp_path, """\
        (OUT / f"timeout{ID}").write_text(os.environ["PUREJAXRL_PPO_INIT_TIMEOUT"])
    """)
    assert launch([str(tmp_path)], 2, program=program, init_timeout=12.5) == 0
    assert [(tmp_path / f"timeout{i}").read_text() for i in range(2)] == ["12.5", "12.5"]
    args = launch_parser().parse_args(["launch", "--processes", "2", "--init-timeout", "30", "--", "train"])
    assert args.init_timeout == 30.0


# ----------------------------------------------------------------------------- 8: a port in use is refused
@pytest.fixture
def busy_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_8_a_port_in_use_is_refused_before_any_process_starts(busy_port, tmp_path, capsys):
    program = script(tmp_path, """\
        (OUT / f"started{ID}").touch()
    """)
    args = launch_parser().parse_args(["launch", "--processes", "2", "--port", str(busy_port), "--", "train"])
    args.rest = [str(tmp_path)]
    with pytest.raises(ValueError, match=f"port {busy_port} is in use"):
        launch([str(tmp_path)], 2, port=busy_port, program=program)
    assert cmd_launch(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: port {busy_port} is in use")
    assert not list(tmp_path.glob("started*"))


def test_8_process_0_refuses_a_coordinator_port_in_use(group, busy_port):
    with pytest.raises(ValueError, match=f"port {busy_port} .* is in use"):
        distributed.initialize(f"localhost:{busy_port}", 2, 0, initialization_timeout=5)
    assert group == []  # jax never asked to start a second coordinator


# ----------------------------------------------------------------------------- 10: bad launcher flags
def launch_parser():
    parser = argparse.ArgumentParser(prog="purejaxrl_ppo", allow_abbrev=False)
    add_launch_parser(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.parametrize("flags, message", [
    (["--grace-seconds", "-1"], "argument --grace-seconds: must be a number of seconds >= 0, got -1"),
    (["--grace-seconds", "nan"], "argument --grace-seconds: must be a number of seconds >= 0, got nan"),
    (["--port", "70000"], "argument --port: a TCP port is in 1..65535, got 70000"),
    (["--port", "0"], "argument --port: a TCP port is in 1..65535, got 0"),
    (["--init-timeout", "0"], "argument --init-timeout: must be a number of seconds > 0, got 0"),
])
def test_10_bad_launcher_flags_are_refused_in_one_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        launch_parser().parse_args(["launch", "--processes", "2", *flags, "--", "train"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {message}\n" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- 12: blame the right process
@pytest.mark.timeout(60)
def test_12_a_stopped_follower_is_named_not_the_process_that_aborted(tmp_path, capfd):
    program = script(tmp_path, """\
        if ID == 1:
            (OUT / "pid1.tmp").write_text(str(os.getpid()))
            os.replace(OUT / "pid1.tmp", OUT / "pid1")  # whole, never seen empty by process 0
            os.kill(os.getpid(), signal.SIGSTOP)  # frozen; SIGCONT + SIGTERM from the launcher end it
            time.sleep(60)
        wait_for("pid1")
        pid = (OUT / "pid1").read_text()
        while open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
            time.sleep(0.02)
        os.abort()  # what jax does to process 0 when the heartbeat declares process 1 dead
    """)
    start = time.monotonic()
    assert launch([str(tmp_path)], 2, program=program, grace_seconds=5.0) == 134
    assert time.monotonic() - start < 10  # SIGCONT let SIGTERM in: no SIGKILL needed
    err = capfd.readouterr().err
    assert "launch: process 1 (pid " in err and "stopped responding (it is stopped" in err
    assert "so process 0 (pid " in err and "exited with code 134 (killed by SIGABRT) when the group declared" in err
    assert "SIGKILL" not in err


@pytest.mark.timeout(60)
def test_12_a_process_that_lost_its_peer_is_not_blamed(tmp_path, capfd):
    program = script(tmp_path, """\
        if ID == 0:
            wait_for("ready1")
            sys.exit(4)  # train's exit code when another process of the group died
        (OUT / "ready1").touch()
        time.sleep(60)
    """)
    assert launch([str(tmp_path)], 2, program=program) == 4
    err = capfd.readouterr().err
    assert "launch: process 0 (pid " in err and "exited with code 4, which a process does when another" in err
    assert "the cause may be another process" in err


def test_12_orbax_noise_after_an_interrupt_is_silenced(group):
    """Ctrl-C during a checkpoint save: orbax's writer threads fail at exit and log a traceback via absl."""
    distributed.initialize("localhost:1", 2, 1, initialization_timeout=5)
    absl = logging.getLogger("absl")
    assert absl.getEffectiveLevel() < logging.CRITICAL
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert absl.getEffectiveLevel() == logging.CRITICAL


# ----------------------------------------------------------------------------- real processes (make test-all)
RUN_FILE = """\
algo: ppo
env_name: CartPole-v1
num_envs: 2
num_steps: 16
total_timesteps: 200000
hidden_sizes: [8]
num_minibatches: 2
update_epochs: 1
num_seeds: 2
seed: 3
chunk_updates: 20
"""


@pytest.mark.heavy
@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_5_6_a_signal_to_launch_ends_a_real_two_process_run_promptly(signum, tmp_path):
    run_file = tmp_path / "run.yaml"
    run_file.write_text(RUN_FILE)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "purejaxrl_ppo", "launch", "--processes", "2", "--", "train", "--config",
         str(run_file), "--out", str(out), "--quiet"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 200
        while not (out / "checkpoints").is_dir() or not any((out / "checkpoints").iterdir()):
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.stderr.read()
            time.sleep(0.2)
        start = time.monotonic()
        launcher.send_signal(signum)
        code = launcher.wait(timeout=60)
        elapsed = time.monotonic() - start
    finally:
        launcher.kill()
        err = launcher.communicate()[1]
    assert code != 0 and elapsed < 30, err
    assert f"continue with: python -m purejaxrl_ppo train --resume {out}" in err, err
    assert "Traceback" not in err, err


