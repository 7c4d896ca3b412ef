"""Run one multi-process jax job as several local processes: ``python -m purejaxrl_ppo launch``.

A multi-process run (:mod:`purejaxrl_ppo.launch.distributed`) is normally started by a cluster's scheduler,
one process per host. This launcher starts the same processes on one machine, so the multi-process path of
``python -m purejaxrl_ppo train`` can be tried (and tested) before a cluster is involved::

    python -m purejaxrl_ppo launch --processes 2 -- train --algo ppo --env CartPole-v1

Each process gets the environment :func:`process_environments` builds: the coordinator address
(``localhost:PORT``, read by ``jax.distributed.initialize`` itself), the process count and its process id,
the CPU platform, and its own number of XLA CPU devices. The launcher then behaves like one program:

* the port is checked first: one already in use (another job's coordinator) is refused with one line;
* the first process to exit non-zero stops the job: the launcher names it on stderr, sends SIGTERM to the
  others and SIGKILL to any still alive ``grace_seconds`` later (a multi-process job cannot go on without
  one of its processes, and the others would otherwise wait for it until the heartbeat times out). When a
  process failed because another stopped answering (jax aborts every process of a group with SIGABRT when
  one misses its heartbeats; ``train`` exits with :data:`~purejaxrl_ppo.launch.distributed.LOST_PROCESS_EXIT`),
  the launcher names the stopped (SIGSTOP) process if there is one, and otherwise says that the cause may
  be another process rather than blaming the first to exit;
* SIGINT and SIGTERM sent to the launcher are forwarded to every process (again at each repeat; no SIGTERM
  follows a forwarded signal, so a process may finish its clean-up). A process still running
  ``grace_seconds`` after the first forwarded signal gets SIGKILL, named on stderr (processes interrupted
  at different points can wait for each other, one in a collective, one in jax's shutdown barrier). The
  processes run in their own session, so a Ctrl-C at the terminal reaches each of them once, through the
  launcher, not twice;
* the exit code is 0 if every process exited 0, else the first non-zero code observed (a process killed by
  signal N counts as 128 + N, as in a shell).

Output: stdout of every process, and stderr of process 0, are the launcher's own (inherited: a terminal
stays a terminal, so rich's progress bars work). Only process 0 prints in this library
(:func:`~purejaxrl_ppo.launch.distributed.is_primary`); what the others write to stderr (warnings, a
traceback) is read line by line from a pipe by a thread and prefixed ``[process i] ``, so it can be told
apart (``stream_prefix=False``: inherited as well).

The launcher itself needs no jax and initialises none: it only starts processes.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from purejaxrl_ppo.launch.distributed import (
    ENV_COORDINATOR,
    ENV_INIT_TIMEOUT,
    ENV_NUM_PROCESSES,
    ENV_PROCESS_ID,
    LOST_PROCESS_EXIT,
    port_in_use,
)
from purejaxrl_ppo.platform import CPU_DEVICE_COUNT_FLAG

#: The ``python -m purejaxrl_ppo`` commands that join a process group (the others would run N times over).
MULTI_PROCESS_COMMANDS = ("train",)

POLL_SECONDS = 0.1
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def free_port() -> int:
    """An unused localhost TCP port, for the coordinator (the OS picks it; free until someone else binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_environments(processes: int, devices_per_process: int, port: int,
                         base_env: Mapping[str, str]) -> list[dict[str, str]]:
    """One environment per process: ``base_env`` plus the process group's variables and ``devices_per_process``
    XLA CPU devices (an existing ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` is replaced, the
    other flags are kept, so the launcher's own XLA settings, e.g. the CPU deadlock workaround, still apply)."""
    flags = [flag for flag in base_env.get("XLA_FLAGS", "").split()
             if flag.split("=", 1)[0] != CPU_DEVICE_COUNT_FLAG]
    shared = {**base_env, ENV_COORDINATOR: f"localhost:{port}", ENV_NUM_PROCESSES: str(processes),
              "JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join([*flags, f"{CPU_DEVICE_COUNT_FLAG}={devices_per_process}"])}
    return [{**shared, ENV_PROCESS_ID: str(i)} for i in range(processes)]


def launch(argv: Sequence[str], processes: int, devices_per_process: int = 1, port: int | None = None,
           program: Sequence[str] | None = None, grace_seconds: float = 10.0, stream_prefix: bool = True,
           init_timeout: float | None = None) -> int:
    """Run ``program + argv`` as ``processes`` local processes of one jax job; return the job's exit code.

    ``program`` defaults to ``python -m purejaxrl_ppo`` (this interpreter), ``port`` to a free one.
    ``init_timeout``: seconds each process waits for the group to form (default: theirs,
    :data:`~purejaxrl_ppo.launch.distributed.INIT_TIMEOUT_SECONDS`). See the module docstring for how
    failures, signals and output are handled. Raises ``ValueError`` for a non-positive ``processes``,
    ``devices_per_process`` or ``init_timeout``, a negative ``grace_seconds``, a port outside 1..65535 or
    in use, or an empty ``argv``.
    """
    if not _positive(processes):
        raise ValueError(f"processes must be a positive int, got {processes!r}")
    if not _positive(devices_per_process):
        raise ValueError(f"devices_per_process must be a positive int, got {devices_per_process!r}")
    if not grace_seconds >= 0:  # NaN too
        raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds!r}")
    if init_timeout is not None and not init_timeout > 0:
        raise ValueError(f"init_timeout must be > 0 seconds, got {init_timeout!r}")
    if not argv:
        raise ValueError("argv is empty: give the command each process runs (e.g. ['train', '--algo', 'ppo'])")
    if port is not None:
        _check_port(port)
    command = [*(program or [sys.executable, "-m", "purejaxrl_ppo"]), *argv]
    base_env = dict(os.environ) if init_timeout is None else {**os.environ, ENV_INIT_TIMEOUT: f"{init_timeout:g}"}
    environments = process_environments(processes, devices_per_process, free_port() if port is None else port,
                                        base_env)

    children: list[subprocess.Popen] = []
    readers: list[threading.Thread] = []
    received: list[int] = []  # signals forwarded so far

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        _send(children, signum)

    previous = _install(forward)
    try:
        for i, env in enumerate(environments):
            if received:  # interrupted while starting: start no more
                break
            prefixed = stream_prefix and i > 0
            child = subprocess.Popen(command, env=env, start_new_session=True,
                                     stderr=subprocess.PIPE if prefixed else None)
            children.append(child)
            if prefixed:
                readers.append(_start_prefixer(child.stderr, f"[process {i}] "))
        code = _supervise(children, grace_seconds, received)
    finally:
        _send(children, signal.SIGKILL)  # only on an unexpected error: normally none is alive by now
        for child in children:
            child.wait()
        _restore(previous)
        for reader in readers:
            reader.join(timeout=1.0)  # a grandchild may still hold the pipe open; the thread is a daemon
    return code


def _check_port(port: int) -> None:
    if not (isinstance(port, int) and 1 <= port <= 65535):
        raise ValueError(f"port must be in 1..65535, got {port!r}")
    if port_in_use(port):
        raise ValueError(f"port {port} is in use (another job's coordinator?): give another --port, or leave it "
                         "out for a free one")


def _supervise(children: list[subprocess.Popen], grace_seconds: float, received: list[int]) -> int:
    """Poll until every child has exited; stop the others at the first failure, or all of them
    ``grace_seconds`` after a forwarded signal; return the job's exit code."""
    code = 0
    kill_at = None
    signalled_at = None  # when the first forwarded signal was seen
    while True:
        statuses = [child.poll() for child in children]
        failed = next((i for i, status in enumerate(statuses) if status), None)  # neither running (None) nor 0
        if code == 0 and failed is not None:
            code = _exit_code(statuses[failed])
            others = [i for i, status in enumerate(statuses) if status is None]
            _say(_failure_line(children, statuses, failed, others))
            if not received:  # after a forwarded signal the others are already stopping: let them finish
                _send([children[i] for i in others], signal.SIGTERM)
                _send([children[i] for i in others], signal.SIGCONT)  # a stopped process must see it
            kill_at = time.monotonic() + grace_seconds
        if all(status is not None for status in statuses):
            return code
        if received and signalled_at is None:
            signalled_at = time.monotonic()
            if kill_at is None or kill_at > signalled_at + grace_seconds:
                kill_at = signalled_at + grace_seconds
        if kill_at is not None and time.monotonic() >= kill_at:
            after = (f"{signal.Signals(received[0]).name} (waiting for another process?)" if received
                     else "the failure")
            for i, child in enumerate(children):
                if child.poll() is None:
                    _say(f"process {i} (pid {child.pid}) still running {grace_seconds:g} s after {after}; "
                         "sending SIGKILL")
                    child.send_signal(signal.SIGKILL)
            kill_at = None
        time.sleep(POLL_SECONDS)


def _failure_line(children: list[subprocess.Popen], statuses: list[int | None], failed: int,
                  others: list[int]) -> str:
    """The launcher's line on the first failure: which process exited, and which one is to blame if that was
    another one (a stopped process, which jax's heartbeat declares dead, aborting the group)."""
    status, pid = statuses[failed], children[failed].pid
    stopping = f"; stopping the other {len(others)} process(es)" if others else ""
    exited = f"process {failed} (pid {pid}) exited with code {_exit_code(status)}{_describe(status)}"
    stopped = [i for i in others if _is_stopped(children[i].pid)]
    if stopped:
        names = ", ".join(f"process {i} (pid {children[i].pid})" for i in stopped)
        return (f"{names} stopped responding (it is stopped: SIGSTOP or Ctrl-Z?), so {exited} when the group "
                f"declared it dead{stopping}")
    if _exit_code(status) in (128 + signal.SIGABRT, LOST_PROCESS_EXIT):
        return (f"{exited}, which a process does when another one of its group stopped responding or died: "
                f"the cause may be another process (see its lines above){stopping}")
    return exited + stopping


def _is_stopped(pid: int) -> bool:
    """True if ``pid`` is stopped (state T/t in ``/proc/PID/stat``; False where there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _exit_code(status: int) -> int:
    """``Popen.returncode`` as a shell reports it: killed by signal N -> 128 + N."""
    return 128 - status if status < 0 else status


def _describe(status: int) -> str:
    if status >= 0:
        return ""
    try:
        return f" (killed by {signal.Signals(-status).name})"
    except ValueError:
        return f" (killed by signal {-status})"


def _send(children: Sequence[subprocess.Popen], signum: int) -> None:
    for child in children:
        try:
            child.send_signal(signum)  # a no-op for a child already reaped
        except ProcessLookupError:  # exited but not yet reaped
            pass


def _install(handler: Any) -> dict[int, Any] | None:
    """Install ``handler`` for the forwarded signals; None (nothing installed) outside the main thread,
    where Python cannot install signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {signum: signal.signal(signum, handler) for signum in FORWARDED_SIGNALS}


def _restore(previous: dict[int, Any] | None) -> None:
    for signum, handler in (previous or {}).items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _start_prefixer(pipe: IO[bytes], prefix: str) -> threading.Thread:
    """A daemon thread copying ``pipe`` to our stderr line by line, each line prefixed."""

    def copy() -> None:
        with pipe:
            for line in pipe:
                text = line.decode(errors="replace")
                _write(prefix + (text if text.endswith("\n") else text + "\n"))

    thread = threading.Thread(target=copy, name=f"launch {prefix.strip()}", daemon=True)
    thread.start()
    return thread


_WRITE_LOCK = threading.Lock()


def _write(text: str) -> None:
    with _WRITE_LOCK:  # whole lines only, whichever thread writes
        if sys.stderr is not None:
            sys.stderr.write(text)
            sys.stderr.flush()


def _say(message: str) -> None:
    _write(f"launch: {message}\n")


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# ----------------------------------------------------------------------------- command line
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is in 1..65535, got {value}")
    return value


def seconds_type(minimum: float, strict: bool):
    """An argparse type: a finite number of seconds, ``> minimum`` if ``strict`` else ``>= minimum``."""

    def parse(text: str) -> float:
        value = float(text)
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be a number of seconds {'>' if strict else '>='} {minimum:g}, "
                                             f"got {text}")
        return value

    parse.__name__ = "seconds"  # argparse's "invalid seconds value" for text that is no number
    return parse


class _Rest(argparse.Action):
    """The command after ``--``: the separator stripped, an empty command refused."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        rest = list(values)[1:] if values and values[0] == "--" else list(values)
        if not rest:
            parser.error("give the command each process runs after '--', e.g. launch --processes 2 -- train "
                         "--algo ppo")
        if rest[0] not in MULTI_PROCESS_COMMANDS:
            parser.error(f"{rest[0]!r} runs in one process; the commands that run as several processes are: "
                         f"{', '.join(MULTI_PROCESS_COMMANDS)}")
        setattr(namespace, self.dest, rest)


def add_launch_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``launch`` subcommand's parser, added to the subparsers ``sub``."""
    parser = sub.add_parser("launch", help="run a command as several local processes of one jax job",
                            description="Run `python -m purejaxrl_ppo COMMAND` as several local processes of one "
                                        "multi-process jax job (try the multi-process path on one machine).",
                            allow_abbrev=False)
    parser.add_argument("--processes", type=_positive_int, required=True, metavar="N", help="processes to start")
    parser.add_argument("--devices-per-process", type=_positive_int, default=1, metavar="N",
                        help="XLA CPU devices of each process [default: 1]")
    parser.add_argument("--port", type=_port, default=None, metavar="P",
                        help="the coordinator's localhost port, 1..65535; refused if in use [default: a free one]")
    parser.add_argument("--grace-seconds", type=seconds_type(0, strict=False), default=10.0, metavar="S",
                        help="after a process fails, or after Ctrl-C/SIGTERM, seconds the processes get to stop "
                             "before SIGKILL [default: 10]")
    parser.add_argument("--init-timeout", type=seconds_type(0, strict=True), default=None, metavar="S",
                        help="seconds each process waits for the whole group to connect before it says what it "
                             f"could not reach and exits [default: ${ENV_INIT_TIMEOUT} or 120]")
    parser.add_argument("rest", nargs=argparse.REMAINDER, action=_Rest, metavar="COMMAND",
                        help="after --: the purejaxrl_ppo command each process runs, e.g. -- train --algo ppo")
    return parser


def cmd_launch(args: argparse.Namespace) -> int:
    try:
        return launch(args.rest, args.processes, devices_per_process=args.devices_per_process, port=args.port,
                      grace_seconds=args.grace_seconds, init_timeout=args.init_timeout)
    except ValueError as err:  # a port in use (the flags are checked by the parser)
        print(f"error: {err}", file=sys.stderr)
        return 2
