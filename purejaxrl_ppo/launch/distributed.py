"""Several processes, one job: ``jax.distributed`` set-up and the few collectives the host side needs.

Under jax's multi-controller runtime every process runs the same Python program; ``jax.devices()`` lists
every process's devices and a :class:`~purejaxrl_ppo.launch.layout.SeedLayout` over them shards the seeds
across processes. This module holds what the host side adds to that:

* :func:`initialize`: ``jax.distributed.initialize`` with a bounded heartbeat (a dead process is
  detected within :data:`HEARTBEAT_SECONDS` rather than the 100 s default), a bounded wait for the group to
  form (:data:`INIT_TIMEOUT_SECONDS`, then one line naming what was unreachable), a refusal if process 0's
  port is taken, SIGINT and SIGTERM honoured (``_honour_interrupts``) and gloo collectives on CPU,
  from arguments or from the environment (:func:`initialize_from_environment`: ``JAX_COORDINATOR_ADDRESS``,
  which jax reads itself, with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, set by
  ``python -m purejaxrl_ppo launch``; SLURM and TPU pods through jax's own cluster detection);
* :func:`is_primary`: process 0, the only one that writes files or prints;
* :func:`broadcast_json` and :func:`broadcast_arrays`: process 0's decision (a config read from a run
  directory, a restored checkpoint, an error) handed to every process, so files are read once, on one host.

Everything here is a no-op with one process, so single-process code paths are unchanged.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

import numpy as np

#: Seconds without a heartbeat after which the coordination service declares a process dead.
HEARTBEAT_SECONDS = int(os.environ.get("PUREJAXRL_PPO_HEARTBEAT_TIMEOUT", "20"))

ENV_INIT_TIMEOUT = "PUREJAXRL_PPO_INIT_TIMEOUT"
#: Seconds every process waits for the whole group to connect to the coordinator (jax's default is 300 s,
#: silent) before it says what it could not reach and exits with :data:`INIT_FAILED_EXIT`.
INIT_TIMEOUT_SECONDS = float(os.environ.get(ENV_INIT_TIMEOUT, "120"))
#: Exit code of a process whose group did not form (the coordinator unreachable, a process missing).
INIT_FAILED_EXIT = 2
#: Exit code of ``train`` when another process of the group died (``cli.commands`` exits with it too).
LOST_PROCESS_EXIT = 4
#: After SIGINT/SIGTERM, seconds a process waits at exit for the others in jax's shutdown barrier.
INTERRUPTED_SHUTDOWN_SECONDS = 5.0

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # read by jax.distributed.initialize itself
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"  # read by initialize_from_environment
ENV_PROCESS_ID = "JAX_PROCESS_ID"


class ProcessGroupError(RuntimeError):
    """Process 0 failed before the others could go on; they raise this with its message."""


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, initialization_timeout: float | None = None) -> None:
    """``jax.distributed.initialize`` with bounded waits, SIGINT/SIGTERM honoured, and gloo collectives on CPU.

    Arguments left ``None`` are detected by jax (SLURM, TPU pods, ``JAX_COORDINATOR_ADDRESS``).
    ``initialization_timeout``: seconds to wait for every process to connect (default
    :data:`INIT_TIMEOUT_SECONDS`); past it the process prints one line saying what it could not reach and
    exits with :data:`INIT_FAILED_EXIT` (jax itself would wait 300 s, then abort with a C++ stack trace).
    Raises ``ValueError`` if process 0's coordinator port is already taken (another job would share it).
    Must run before any jax computation (jax's backends read the process group when they start).
    """
    import jax

    if _initialized():
        return
    timeout = INIT_TIMEOUT_SECONDS if initialization_timeout is None else initialization_timeout
    if not timeout > 0:
        raise ValueError(f"initialization_timeout must be > 0 seconds, got {timeout!r}")
    address = coordinator_address or os.environ.get(ENV_COORDINATOR)
    if process_id == 0 and address and port_in_use(_port_of(address)):
        raise ValueError(f"the coordinator's port {_port_of(address)} (from {address}) is in use, probably by "
                         "another job: give each job its own port")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; ignored by GPU/TPU backends
    # jax's preemption service installs a C++ SIGTERM handler that only records the notice (for
    # multihost_utils.reached_preemption_sync_point, unused here): SIGTERM would then be ignored and a
    # scheduler's stop request trains on until SIGKILL. Off, SIGTERM is ours (_honour_interrupts).
    jax.config.update("jax_enable_preemption_service", False)
    watchdog = threading.Timer(timeout, _group_did_not_form, (address, num_processes, process_id, timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id, heartbeat_timeout_seconds=HEARTBEAT_SECONDS,
                                   initialization_timeout=int(timeout) + 30)  # a backstop: the watchdog says why
    finally:
        watchdog.cancel()
    if _group_size() > 1:
        _honour_interrupts()


def port_in_use(port: int) -> bool:
    """True if something listens on TCP ``port`` (any address), i.e. a coordinator could not have it alone.

    jax's coordinator binds ``[::]:port`` with SO_REUSEPORT, so a second one on the same port starts without
    complaint; this plain bind (SO_REUSEADDR only, so ports in TIME_WAIT count as free) fails instead.
    """
    families = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")] if socket.has_ipv6 else []
    for family, host in families or [(socket.AF_INET, "0.0.0.0")]:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
            return False
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return True
            # this address family is unavailable here (no IPv6): try the next one
    return False


def _port_of(address: str) -> int:
    try:
        return int(address.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"the coordinator address {address!r} is not HOST:PORT") from None


def _group_did_not_form(address: str | None, num_processes: int | None, process_id: int | None,
                        timeout: float) -> None:
    """The watchdog of :func:`initialize`: say in one line what could not be reached, then exit at once (the
    main thread is blocked inside jax's connect, which no Python exception can interrupt)."""
    group = f"a group of {num_processes} processes" if num_processes else "the process group"
    how = f"(the wait is --init-timeout of launch or train, else ${ENV_INIT_TIMEOUT})"
    if process_id == 0:
        reason = (f"process 0 serves the coordinator at {address} but {group} did not form within {timeout:g} s: "
                  f"not every process connected {how}")
    elif address and _reachable(address):
        reason = (f"process {process_id} reached the coordinator at {address} but {group} did not form within "
                  f"{timeout:g} s: not every process connected {how}")
    else:
        reason = (f"process {process_id} could not reach the coordinator at {address} within {timeout:g} s: is "
                  f"process 0 running there, and is the address right? {how}")
    _exit_now(f"error: jax.distributed: {reason}", INIT_FAILED_EXIT)


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return True
    except (OSError, ValueError):
        return False


def _exit_now(line: str, code: int) -> None:
    try:
        sys.stdout.flush()
        print(line, file=sys.stderr, flush=True)
    finally:
        os._exit(code)


def _group_size() -> int:
    from jax._src import distributed as jax_distributed

    return jax_distributed.global_state.num_processes


#: The first SIGINT/SIGTERM this process received after joining a group (None: none yet).
_interrupted: list[int] = []


def _honour_interrupts() -> None:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` (so a run stops as at Ctrl-C: its last checkpoint kept
    and the resume command printed), and an interrupted process leaves at exit without waiting for ever.

    Why the exit needs help: processes interrupted at different points leave one waiting in jax's shutdown
    barrier while another waits in a collective for it, each for the other, until jax aborts after 300 s.
    So at exit an interrupted process gives jax's shutdown :data:`INTERRUPTED_SHUTDOWN_SECONDS`, then exits
    with 128 + the signal. Background threads of abandoned work (an orbax save cut short) fail noisily at
    exit; their log is silenced once interrupted, so the resume line is the last word. Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    atexit.register(_leave_after_interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    if not _interrupted:
        _interrupted.append(signum)
        logging.getLogger("absl").setLevel(logging.CRITICAL)  # orbax's writer threads, failing at exit
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _leave_after_interrupt() -> None:
    """At exit: if interrupted, a bounded jax shutdown, then ``os._exit(128 + signal)``; otherwise nothing."""
    if not _interrupted:
        return
    for signum in (signal.SIGINT, signal.SIGTERM):  # a repeated Ctrl-C must not break out of the wait below
        signal.signal(signum, lambda *_: None)
    import jax

    done = threading.Thread(target=jax.distributed.shutdown, daemon=True, name="distributed-shutdown")
    done.start()
    done.join(INTERRUPTED_SHUTDOWN_SECONDS)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + _interrupted[0])


def initialize_from_environment(initialization_timeout: float | None = None) -> bool:
    """Initialise from ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` if set; True if it did.
    ``initialization_timeout``: as for :func:`initialize`."""
    if ENV_COORDINATOR not in os.environ:
        return False
    missing = [name for name in (ENV_NUM_PROCESSES, ENV_PROCESS_ID) if name not in os.environ]
    if missing:
        raise ValueError(f"{ENV_COORDINATOR} is set but {' and '.join(missing)} is not: set all three (or use "
                         "python -m purejaxrl_ppo launch --processes N -- ...)")
    initialize(os.environ[ENV_COORDINATOR], _env_int(ENV_NUM_PROCESSES), _env_int(ENV_PROCESS_ID),
               initialization_timeout)
    return True


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise ValueError(f"{name}={os.environ[name]!r} is not an integer") from None


def _initialized() -> bool:
    from jax._src import distributed  # private: jax has no public "is initialised" query

    return distributed.global_state.client is not None


def process_count() -> int:
    """``jax.process_count()`` (1 without ``jax.distributed``)."""
    import jax

    return jax.process_count()


def process_index() -> int:
    """``jax.process_index()`` (0 without ``jax.distributed``)."""
    import jax

    return jax.process_index()


def is_primary() -> bool:
    """True in process 0 (and in a single-process run): the process that writes files and prints."""
    import jax

    return jax.process_index() == 0


def broadcast_json(value: Any) -> Any:
    """Process 0's JSON-serialisable ``value`` on every process (the others' argument is ignored)."""
    if process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    payload = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8) if is_primary() else np.zeros(0, np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(payload.size)))
    buffer = np.zeros(size, np.uint8)
    buffer[:payload.size] = payload
    data = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    return json.loads(data.tobytes().decode())


def broadcast_arrays(tree: Any, template: Any) -> Any:
    """Process 0's pytree of arrays on every process, as NumPy; ``template`` gives the others its structure.

    ``template`` is a pytree with the same structure, shapes and dtypes (``jax.ShapeDtypeStruct`` or arrays);
    process 0 passes its real ``tree``, the others pass anything (it is ignored).
    """
    if process_count() == 1:
        return tree
    import jax
    from jax.experimental import multihost_utils

    source = tree if is_primary() else jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), template)
    return jax.tree_util.tree_map(np.asarray, multihost_utils.broadcast_one_to_all(source))


def dead_processes(wait_seconds: float | None = None) -> list[int]:
    """Processes the coordination service has declared dead, waiting up to ``wait_seconds`` for one to show.

    The service notices a dead process when its heartbeat times out (:data:`HEARTBEAT_SECONDS`, the default
    wait plus 5 s), so a collective that failed because a peer vanished is explained within that time.
    ``[0]`` in another process if the service (which runs in process 0) is gone; empty with one process, if
    nobody died, or if the service does not answer in time (its query waits for every live process to ask
    too, so a process that failed alone gets no answer: it learns nothing and must not wait for one).
    """
    if process_count() == 1:
        return []
    import time

    ids = list(range(process_count()))
    deadline = time.monotonic() + (HEARTBEAT_SECONDS + 5 if wait_seconds is None else wait_seconds)
    while True:
        live = _live_processes(ids, max(0.0, deadline - time.monotonic()))
        if live is None:
            return []
        if isinstance(live, Exception):  # the service itself is gone (process 0 died) or refuses
            return [0] if not is_primary() else []
        dead = sorted(set(ids) - set(live))
        if dead or time.monotonic() >= deadline:
            return dead
        time.sleep(0.5)


def _live_processes(ids: list[int], timeout: float) -> list[int] | Exception | None:
    """The coordination service's live processes among ``ids``; its error; or None after ``timeout`` seconds.

    The query runs in a daemon thread: it blocks until every live process has asked, which may never happen.
    """
    import threading

    from jax._src import distributed as jax_distributed

    answer: list[Any] = []

    def ask() -> None:
        try:
            answer.append(list(jax_distributed.global_state.client.get_live_nodes(ids)))
        except Exception as err:
            answer.append(err)

    thread = threading.Thread(target=ask, daemon=True, name="live-processes")
    thread.start()
    thread.join(timeout)
    return answer[0] if answer else None


def sync(name: str) -> None:
    """Wait until every process reaches this point (no-op with one process)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
