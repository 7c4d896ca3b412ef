"""launch/processes.py: several local processes of one jax job, stopped together, exit code of the first failure.

The children are tiny Python scripts (no jax), so the whole file runs in seconds."""

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import script
from purejaxrl_ppo.launch import processes
from purejaxrl_ppo.launch.processes import (
    ENV_COORDINATOR,
    ENV_NUM_PROCESSES,
    ENV_PROCESS_ID,
    add_launch_parser,
    cmd_launch,
    free_port,
    launch,
    process_environments,
)

REPO = Path(__file__).resolve().parents[2]



def test_process_environments_set_the_group_and_keep_other_xla_flags():
    base = {"PATH": "/bin", "JAX_PLATFORMS": "cuda",
            "XLA_FLAGS": "--xla_a=1 --xla_force_host_platform_device_count=8 --xla_b"}
    envs = process_environments(3, 2, 4321, base)
    assert [env[ENV_PROCESS_ID] for env in envs] == ["0", "1", "2"]
    for env in envs:
        assert env["PATH"] == "/bin" and env["JAX_PLATFORMS"] == "cpu"
        assert env[ENV_COORDINATOR] == "localhost:4321" and env[ENV_NUM_PROCESSES] == "3"
        assert env["XLA_FLAGS"] == "--xla_a=1 --xla_b --xla_force_host_platform_device_count=2"
    assert base["XLA_FLAGS"].endswith("--xla_b")  # not modified
    assert process_environments(1, 4, 1, {})[0]["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4"


def test_free_port_can_be_bound():
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.timeout(60)
def test_every_process_gets_its_environment_and_all_exit_0(tmp_path, capfd):
    program = script(tmp_path, """\
        names = ["JAX_PROCESS_ID", "JAX_NUM_PROCESSES", "JAX_COORDINATOR_ADDRESS", "XLA_FLAGS", "JAX_PLATFORMS"]
        (OUT / f"env{ID}").write_text("\\n".join(os.environ[name] for name in names) + "\\n" + " ".join(sys.argv[2:]))
        print(f"stderr of {ID}", file=sys.stderr)
        print(f"stderr of {ID}, no newline", end="", file=sys.stderr)
    """)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert launch([str(tmp_path), "train", "--algo", "ppo"], 3, devices_per_process=2, port=5555,
                  program=program) == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == previous  # restored
    for i in range(3):
        env_id, count, address, flags, platforms, args = (tmp_path / f"env{i}").read_text().split("\n")
        assert (env_id, count, address, platforms, args) == (str(i), "3", "localhost:5555", "cpu", "train --algo ppo")
        assert flags.split()[-1] == "--xla_force_host_platform_device_count=2"
    err = capfd.readouterr().err
    assert "stderr of 0\n" in err and "[process 0]" not in err  # process 0 passes through unchanged
    for i in (1, 2):
        assert f"[process {i}] stderr of {i}\n" in err and f"[process {i}] stderr of {i}, no newline\n" in err
    assert "launch:" not in err


@pytest.mark.timeout(60)
def test_the_first_failure_stops_the_others_and_is_the_exit_code(tmp_path, capfd):
    program = script(tmp_path, """\
        if ID == 1:
            wait_for("ready0")
            sys.exit(3)
        (OUT / "ready0").touch()
        time.sleep(60)
        (OUT / "finished0").touch()
    """)
    start = time.monotonic()
    assert launch([str(tmp_path)], 2, program=program) == 3
    assert time.monotonic() - start < 15
    assert not (tmp_path / "finished0").exists()
    err = capfd.readouterr().err
    assert "launch: process 1 (pid " in err and "exited with code 3; stopping the other 1 process(es)" in err


@pytest.mark.timeout(60)
def test_a_process_killed_by_a_signal_counts_as_128_plus_n(tmp_path, capfd):
    program = script(tmp_path, """\
        if ID == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
    """)
    assert launch([str(tmp_path)], 2, program=program) == 137
    err = capfd.readouterr().err
    assert "launch: process 1 (pid " in err and "exited with code 137 (killed by SIGKILL)" in err


@pytest.mark.timeout(60)
def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path, capfd):
    program = script(tmp_path, """\
        if ID == 1:
            wait_for("ready0")
            sys.exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        (OUT / "ready0").touch()
        time.sleep(60)
    """)
    start = time.monotonic()
    assert launch([str(tmp_path)], 2, program=program, grace_seconds=1.0) == 1
    assert 1.0 <= time.monotonic() - start < 15
    err = capfd.readouterr().err
    assert "process 0 (pid " in err and "still running 1 s after the failure; sending SIGKILL" in err


@pytest.mark.timeout(60)
def test_sigint_is_forwarded_to_every_process(tmp_path):
    program = script(tmp_path, """\
        def stop(signum, frame):
            (OUT / f"interrupted{ID}").touch()
            sys.exit(130)
        signal.signal(signal.SIGINT, stop)
        (OUT / f"ready{ID}").touch()
        time.sleep(60)
    """)
    code = (f"import sys; from purejaxrl_ppo.launch.processes import launch; "
            f"sys.exit(launch([{str(tmp_path)!r}], 2, program={program!r}))")
    launcher = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    try:
        deadline = time.monotonic() + 45
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert launcher.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=10) == 130
    finally:
        launcher.kill()
        launcher.wait()
    assert all((tmp_path / f"interrupted{i}").exists() for i in range(2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(argv=["train"], processes=0), "processes must be a positive int"),
    (dict(argv=["train"], processes=2, devices_per_process=0), "devices_per_process must be a positive int"),
    (dict(argv=["train"], processes=True), "processes must be a positive int"),
    (dict(argv=["train"], processes=2, grace_seconds=-1), "grace_seconds must be >= 0"),
    (dict(argv=[], processes=2), "argv is empty"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        launch(**kwargs)


def launch_parser():
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_launch_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_the_cli_parser_takes_the_command_after_the_separator(monkeypatch):
    args = launch_parser().parse_args(["launch", "--processes", "2", "--", "train", "--algo", "ppo", "--port", "1"])
    assert (args.processes, args.devices_per_process, args.port, args.grace_seconds) == (2, 1, None, 10.0)
    assert args.rest == ["train", "--algo", "ppo", "--port", "1"]
    args = launch_parser().parse_args(["launch", "--processes", "3", "--devices-per-process", "2", "--port", "7",
                                       "--grace-seconds", "0.5", "train", "--algo", "ppo"])
    assert (args.processes, args.devices_per_process, args.port, args.grace_seconds) == (3, 2, 7, 0.5)
    assert args.rest == ["train", "--algo", "ppo"]

    calls = []
    monkeypatch.setattr(processes, "launch", lambda argv, n, **kwargs: calls.append((argv, n, kwargs)) or 5)
    assert cmd_launch(args) == 5
    assert calls == [(["train", "--algo", "ppo"], 3, dict(devices_per_process=2, port=7, grace_seconds=0.5,
                                                          init_timeout=None))]


@pytest.mark.parametrize("argv", [["launch", "--processes", "2"], ["launch", "--processes", "2", "--"],
                                  ["launch", "--", "train"], ["launch", "--processes", "0", "--", "train"],
                                  ["launch", "--proc", "2", "--", "train"]])
def test_the_cli_parser_refuses_a_missing_command_or_bad_flags(argv, capsys):
    with pytest.raises(SystemExit):
        launch_parser().parse_args(argv)
