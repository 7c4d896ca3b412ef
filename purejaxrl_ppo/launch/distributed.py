"""Several processes, one job: ``jax.distributed`` set-up and the few collectives the host side needs.

Under jax's multi-controller runtime every process runs the same Python program; ``jax.devices()`` lists
every process's devices and a :class:`~purejaxrl_ppo.launch.layout.SeedLayout` over them shards the seeds
across processes. This module holds what the host side adds to that:

* :func:`initialize`: ``jax.distributed.initialize`` with a bounded heartbeat (a dead process is
  detected within :data:`HEARTBEAT_SECONDS` rather than the 100 s default) and gloo collectives on CPU,
  from arguments or from the environment (:func:`initialize_from_environment`: ``JAX_COORDINATOR_ADDRESS``,
  which jax reads itself, with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, set by
  ``python -m purejaxrl_ppo launch``; SLURM and TPU pods through jax's own cluster detection);
* :func:`is_primary`: process 0, the only one that writes files or prints;
* :func:`broadcast_json` and :func:`broadcast_arrays`: process 0's decision (a config read from a run
  directory, a restored checkpoint, an error) handed to every process, so files are read once, on one host.

Everything here is a no-op with one process, so single-process code paths are unchanged.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

#: Seconds without a heartbeat after which the coordination service declares a process dead.
HEARTBEAT_SECONDS = int(os.environ.get("PUREJAXRL_PPO_HEARTBEAT_TIMEOUT", "20"))

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # read by jax.distributed.initialize itself
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"  # read by initialize_from_environment
ENV_PROCESS_ID = "JAX_PROCESS_ID"


class ProcessGroupError(RuntimeError):
    """Process 0 failed before the others could go on; they raise this with its message."""


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """``jax.distributed.initialize`` with a bounded heartbeat, and gloo collectives on CPU.

    Arguments left ``None`` are detected by jax (SLURM, TPU pods, ``JAX_COORDINATOR_ADDRESS``).
    Must run before any jax computation (jax's backends read the process group when they start).
    """
    import jax

    if _initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; ignored by GPU/TPU backends
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, heartbeat_timeout_seconds=HEARTBEAT_SECONDS)


def initialize_from_environment() -> bool:
    """Initialise from ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` if set; True if it did."""
    if ENV_COORDINATOR not in os.environ:
        return False
    missing = [name for name in (ENV_NUM_PROCESSES, ENV_PROCESS_ID) if name not in os.environ]
    if missing:
        raise ValueError(f"{ENV_COORDINATOR} is set but {' and '.join(missing)} is not: set all three (or use "
                         "python -m purejaxrl_ppo launch --processes N -- ...)")
    initialize(os.environ[ENV_COORDINATOR], _env_int(ENV_NUM_PROCESSES), _env_int(ENV_PROCESS_ID))
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
