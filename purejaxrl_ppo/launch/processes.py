"""Run one multi-process jax job as several local processes: ``python -m purejaxrl_ppo launch``.

A multi-process run (:mod:`purejaxrl_ppo.launch.distributed`) is normally started by a cluster's scheduler,
one process per host. This launcher starts the same processes on one machine, so the multi-process path of
``python -m purejaxrl_ppo train`` can be tried (and tested) before a cluster is involved::

    python -m purejaxrl_ppo launch --processes 2 -- train --algo ppo --env CartPole-v1

Each process gets the environment :func:`process_environments` builds: the coordinator address
(``localhost:PORT``, read by ``jax.distributed.initialize`` itself), the process count and its process id,
the CPU platform, and its own number of XLA CPU devices. The launcher then behaves like one program:

* the first process to exit non-zero stops the job: the launcher names it on stderr, sends SIGTERM to the
  others and SIGKILL to any still alive ``grace_seconds`` later (a multi-process job cannot go on without
  one of its processes, and the others would otherwise wait for it until the heartbeat times out);
* SIGINT and SIGTERM sent to the launcher are forwarded to every process (again at each repeat; no SIGTERM
  follows a forwarded signal, so a process may finish its clean-up, but SIGKILL still does ``grace_seconds``
  after the first failure). The processes run in their own session, so a Ctrl-C at the terminal reaches
  each of them once, through the launcher, not twice;
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
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from purejaxrl_ppo.launch.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID
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
           program: Sequence[str] | None = None, grace_seconds: float = 10.0, stream_prefix: bool = True) -> int:
    """Run ``program + argv`` as ``processes`` local processes of one jax job; return the job's exit code.

    ``program`` defaults to ``python -m purejaxrl_ppo`` (this interpreter), ``port`` to a free one. See the
    module docstring for how failures, signals and output are handled. Raises ``ValueError`` for a
    non-positive ``processes`` or ``devices_per_process``, a negative ``grace_seconds`` or an empty ``argv``.
    """
    if not _positive(processes):
        raise ValueError(f"processes must be a positive int, got {processes!r}")
    if not _positive(devices_per_process):
        raise ValueError(f"devices_per_process must be a positive int, got {devices_per_process!r}")
    if grace_seconds < 0:
        raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds!r}")
    if not argv:
        raise ValueError("argv is empty: give the command each process runs (e.g. ['train', '--algo', 'ppo'])")
    command = [*(program or [sys.executable, "-m", "purejaxrl_ppo"]), *argv]
    environments = process_environments(processes, devices_per_process, free_port() if port is None else port,
                                        os.environ)

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


def _supervise(children: list[subprocess.Popen], grace_seconds: float, received: list[int]) -> int:
    """Poll until every child has exited; stop the others at the first failure; return the job's exit code."""
    code = 0
    kill_at = None
    while True:
        statuses = [child.poll() for child in children]
        failed = next((i for i, status in enumerate(statuses) if status), None)  # neither running (None) nor 0
        if code == 0 and failed is not None:
            child, status = children[failed], statuses[failed]
            code = _exit_code(status)
            others = [other for other, status in zip(children, statuses) if status is None]
            stopping = f"; stopping the other {len(others)} process(es)" if others else ""
            _say(f"process {failed} (pid {child.pid}) exited with code {code}{_describe(status)}{stopping}")
            if not received:  # after a forwarded signal the others are already stopping: let them finish
                _send(others, signal.SIGTERM)
            kill_at = time.monotonic() + grace_seconds
        if all(status is not None for status in statuses):
            return code
        if kill_at is not None and time.monotonic() >= kill_at:
            for i, child in enumerate(children):
                if child.poll() is None:
                    _say(f"process {i} (pid {child.pid}) still running {grace_seconds:g} s after the failure; "
                         "sending SIGKILL")
                    child.send_signal(signal.SIGKILL)
            kill_at = None
        time.sleep(POLL_SECONDS)


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
    parser.add_argument("--port", type=int, default=None, metavar="P",
                        help="the coordinator's localhost port [default: a free one]")
    parser.add_argument("--grace-seconds", type=float, default=10.0, metavar="S",
                        help="after a process fails, seconds the others get to stop before SIGKILL [default: 10]")
    parser.add_argument("rest", nargs=argparse.REMAINDER, action=_Rest, metavar="COMMAND",
                        help="after --: the purejaxrl_ppo command each process runs, e.g. -- train --algo ppo")
    return parser


def cmd_launch(args: argparse.Namespace) -> int:
    return launch(args.rest, args.processes, devices_per_process=args.devices_per_process, port=args.port,
                  grace_seconds=args.grace_seconds)
