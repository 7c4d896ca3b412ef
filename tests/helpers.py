"""Helpers shared by the tests (``from helpers import ...``; tests/conftest.py puts tests/ on sys.path).

Tiny configs, small networks with random parameters, numpy references for the
action distributions, tree comparisons and a fast-compiling ``jit``.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxrl_ppo.core.envs.base import ActionSpace
from purejaxrl_ppo.core.networks import ActorCritic

#: The repository root (examples/, benchmarks/).
ROOT = Path(__file__).resolve().parents[1]

# Compile time dominates on a small CPU; LLVM's optimisation level changes nothing the tests check.
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


# ----------------------------------------------------------------------------- tiny configs
#: A tiny CartPole run: 2 envs × 16 steps, 6 updates, one hidden layer of 8.
TINY = dict(env_name="CartPole-v1", num_envs=2, num_steps=16, total_timesteps=2 * 16 * 6, hidden_sizes=(8,))


def tiny_config(algo: str, **overrides) -> pjp.BaseConfig:
    """:data:`TINY` with 2 minibatches × 2 epochs (PPO) or 2 critic minibatches × 2 epochs, every 2nd sample for the Fisher (TRPO)."""
    if algo == "ppo":
        return pjp.PPOConfig(**{**TINY, "num_minibatches": 2, "update_epochs": 2, **overrides})
    return pjp.TRPOConfig(**{**TINY, "critic_minibatches": 2, "critic_epochs": 2, "fisher_subsample": 2, **overrides})


# ----------------------------------------------------------------------------- small networks
def discrete_space(num_actions: int) -> ActionSpace:
    return ActionSpace(discrete=True, num_actions=num_actions)


#: A 2-dimensional continuous action space in [-1, 1]².
BOX2 = ActionSpace(discrete=False, shape=(2,), low=(-1.0, -1.0), high=(1.0, 1.0))


def small_network(action_space: ActionSpace, **fields) -> ActorCritic:
    """An MLP actor-critic on 3-dimensional observations with one hidden layer of 4."""
    return ActorCritic(**{"observation_shape": (3,), "action_space": action_space, "hidden_sizes": (4,), **fields})


def random_params(network, seed: int, scale: float = 1.0):
    """Random-normal parameters ``{"actor", "critic"}`` shaped like ``network.init``'s (no orthogonal-init compile).

    The init's 0.01-gain policy head gives a near-uniform policy; random weights make
    log-probs, entropies and Fisher matrices informative.
    """
    leaves, treedef = jax.tree_util.tree_flatten(jax.eval_shape(network.init, jax.random.PRNGKey(0)))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(scale * rng.normal(size=x.shape), jnp.float32) for x in leaves])


def random_actor_params(network, seed: int, scale: float = 0.7):
    """Random-normal actor parameters alone (the actor's leaves come first, so these equal ``random_params(...)["actor"]``)."""
    shapes = jax.eval_shape(network.init, jax.random.PRNGKey(0))["actor"]
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(scale * rng.normal(size=x.shape), jnp.float32) for x in leaves])


# ----------------------------------------------------------------------------- env rollouts
def env_rollout(env, key, actions):
    """Reset ``env`` with ``key`` then step through ``actions [T, ...]`` in one scan: ``(obs0, StepResults [T, ...])``
    without the states."""

    @fast_jit
    def run(key, actions):
        reset_key, key = jax.random.split(key)
        obs0, state = env.reset(reset_key)

        def body(state, inputs):
            step_key, action = inputs
            result = env.step(step_key, state, action)
            return result.state, result._replace(state=())

        _, results = jax.lax.scan(body, state, (jax.random.split(key, actions.shape[0]), actions))
        return obs0, results

    return run(key, actions)


def random_steps_match_spec(env, num_envs: int = 4, num_steps: int = 20):
    """``jit(vmap)`` reset and ``num_steps`` steps of a discrete-action ``env`` with uniform random actions,
    asserting at every step that ``obs`` and ``final_obs`` match the env's spec (shape and dtype), the reward is
    float32 ``[num_envs]`` and the ends are bool. Returns ``(reset obs, [StepResult per step])``."""
    from purejaxrl_ppo.core.envs.base import observation_spec

    spec = observation_spec(env)
    obs, state = fast_jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), num_envs))
    step = fast_jit(jax.vmap(env.step))
    results = []
    for t in range(num_steps):
        keys = jax.random.split(jax.random.PRNGKey(t + 1), num_envs + 1)
        actions = jax.random.randint(keys[0], (num_envs,), 0, env.action_space.num_actions)
        result = step(keys[1:], state, actions)
        state = result.state
        for leaf in (result.obs, result.final_obs):
            assert leaf.shape == (num_envs, *spec.shape) and leaf.dtype == spec.dtype
        assert result.reward.dtype == jnp.float32 and result.reward.shape == (num_envs,)
        assert result.terminated.dtype == jnp.bool_ and result.truncated.dtype == jnp.bool_
        results.append(result)
    return obs, results


# ----------------------------------------------------------------------------- numpy references
def turn_then_goal(env, turn: int, to_goal, goal_reward: float):
    """A grid world that starts the same way each episode (MiniGrid's Empty-5x5 with a 6-step limit): turning
    in place ``max_episode_steps`` times truncates (never terminates) and resets to the first observation;
    then the actions ``to_goal`` terminate at their last step with ``goal_reward``, and reset again.
    Returns the last step's result."""
    step = fast_jit(env.step)
    first, state = fast_jit(env.reset)(jax.random.PRNGKey(0))
    limit = env.max_episode_steps
    for t in range(limit):
        result = step(jax.random.PRNGKey(t), state, jnp.int32(turn))
        state = result.state
        assert bool(result.truncated) == (t == limit - 1) and not bool(result.terminated)
    np.testing.assert_array_equal(result.obs, first)
    assert not np.array_equal(result.final_obs, first)  # the agent faces another way at the end
    for t, action in enumerate(to_goal):
        result = step(jax.random.PRNGKey(10 + t), state, jnp.int32(action))
        state = result.state
        assert bool(result.terminated) == (t == len(to_goal) - 1) and not bool(result.truncated)
    assert float(result.reward) == pytest.approx(goal_reward)
    np.testing.assert_array_equal(result.obs, first)
    return result


def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


# ----------------------------------------------------------------------------- comparisons
def leaves_equal(a, b) -> None:
    """Same tree structure and every leaf equal bit for bit (NaN equals NaN)."""
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------- CLI run directories
def write_run_file(tmp_path_factory, text: str) -> Path:
    """``text`` as ``tiny.yaml`` in a fresh temporary folder (for a module-scoped run-file fixture)."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(text)
    return path


def cli_reference_run(run_file: Path, tmp_path_factory) -> Path:
    """The uninterrupted run of ``run_file``, trained by ``python -m purejaxrl_ppo train`` in this process."""
    from purejaxrl_ppo.cli.commands import main

    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", "--config", str(run_file), "--out", str(out), "--quiet"]) == 0
    return out


def checkpoint_states(run_dir: Path, steps=None) -> dict:
    """``{step: restored checkpoint}`` of a run directory (every checkpoint, or only ``steps``)."""
    from purejaxrl_ppo.launch.programs import abstract_train_state
    from purejaxrl_ppo.runs import rundir
    from purejaxrl_ppo.runs.checkpoint import Checkpointer
    from purejaxrl_ppo.runs.run_files import load_run_file

    config, options = load_run_file(run_dir / rundir.CONFIG_FILE)
    checkpointer = Checkpointer(run_dir / "checkpoints")
    abstract = abstract_train_state(config, options.num_seeds)
    steps = checkpointer.steps() if steps is None else steps
    return {step: checkpointer.restore(step, abstract) for step in steps}


def assert_same_results(run_dir: Path, reference: Path, files) -> None:
    """``run_dir`` finished, its ``metrics.npz`` equal to the reference's and ``files`` byte-identical."""
    from purejaxrl_ppo.runs import rundir

    assert rundir.finished_problem(run_dir) is None
    with np.load(run_dir / "metrics.npz") as a, np.load(reference / "metrics.npz") as b:
        assert sorted(a) == sorted(b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for name in files:
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name


def time_major(batch):
    """A flat ``[B]`` :class:`~purejaxrl_ppo.core.types.UpdateBatch` as a ``[1, B]`` one (flattens back to the same order)."""
    return jax.tree_util.tree_map(lambda x: x[None], batch)


def np_log_softmax(x) -> np.ndarray:
    """float64 log-softmax over the last axis, in NumPy: the independent reference for log-probabilities."""
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def described_names(files: dict[str, str]) -> set[str]:
    """The entry names of a run-directory table (``purejaxrl_ppo.runs.contents``), folders without their ``/``."""
    return {name.rstrip("/") for name in files}


def check_listing(run, files: dict[str, str]) -> None:
    """Every top-level entry of the run directory ``run`` is described in ``files`` (folders with a trailing ``/``)."""
    listing = {p.name: p.is_dir() for p in run.iterdir()}
    undocumented = sorted(set(listing) - described_names(files))
    assert not undocumented, f"{run} holds {undocumented}, which purejaxrl_ppo/runs/contents.py does not describe"
    for name, is_dir in listing.items():
        assert (name + "/" in files) == is_dir, f"{name}: a folder is written with a trailing / in contents.py"


REPO = Path(__file__).resolve().parent.parent


def load_script(relative: str, name: str):
    """The repository's script ``relative`` (e.g. ``"benchmarks/freshness.py"``) as module ``name``: benchmarks/,
    docs/ and notebooks/ are no packages."""
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


#: ``python -c KILL_DRIVER K ARGV...``: runs ``python -m purejaxrl_ppo ARGV...`` and kills itself with SIGKILL at the
#: K-th ``os.rename``/``os.replace`` (a crash at that point of saving or finishing).
KILL_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from purejaxrl_ppo.cli.commands import main

    kill_at, count = int(sys.argv[1]), [0]
    def hook(real):
        def hooked(*args, **kwargs):
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return hooked
    os.rename, os.replace = hook(os.rename), hook(os.replace)
    sys.exit(main(sys.argv[2:]))
""")


#: A run file of a tiny durable run: 8 updates in 4 chunks, a checkpoint after each (tests/runs/).
RUN_FILE = """\
algo: ppo
env_name: CartPole-v1
num_envs: 2
num_steps: 16
total_timesteps: 256   # 8 updates
hidden_sizes: [8]
num_minibatches: 2
update_epochs: 1
num_seeds: 2
seed: 3
chunk_updates: 2       # 4 chunks, a checkpoint after each
keep_checkpoints: 2
"""


#: Launcher tests' child scripts (tests/launch/): each knows its process id and a directory for marker files
#: (its first argument).
PREAMBLE = """\
import os, signal, sys, time
from pathlib import Path
ID = int(os.environ["JAX_PROCESS_ID"])
OUT = Path(sys.argv[1])
def wait_for(name):
    while not (OUT / name).exists():
        time.sleep(0.02)
"""


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(PREAMBLE + textwrap.dedent(body))
    return [sys.executable, str(path)]


# ----------------------------------------------------------------------------- fault injection (tests/driver/)
class Crash(BaseException):
    """A simulated kill, raised just before a rename (:class:`RenameHook`); no ``Exception``: nothing handles it."""


class RenameHook:
    """Count every ``os.rename``/``os.replace`` (the moments a run's files change state) and record each one's
    destination relative to ``root``; raise :class:`Crash` just before the ``k``-th (1-based) or before the first
    whose destination is ``at`` (relative to ``root``). ``monkeypatch``: a pytest ``MonkeyPatch``."""

    def __init__(self, monkeypatch, root: Path, k: int | None = None, at: str | None = None):
        import os

        self.root, self.k, self.at = os.path.abspath(root), k, at
        self.destinations: list[str] = []
        self.crashed: str | None = None
        for name in ("rename", "replace"):
            real = getattr(os, name)

            def hooked(src, dst, *args, _real=real, **kwargs):
                where = os.path.relpath(os.path.abspath(os.fspath(dst)), self.root)
                self.destinations.append(where)
                if self.crashed is None and (len(self.destinations) == self.k or where == self.at):
                    self.crashed = where
                    raise Crash(f"crash before rename {len(self.destinations)} (to {where})")
                return _real(src, dst, *args, **kwargs)

            monkeypatch.setattr(os, name, hooked)


#: ``python -c KILL_AT_DRIVER ROOT AT ARGV...``: runs ``python -m purejaxrl_ppo ARGV...`` and kills itself with SIGKILL
#: just before its first ``os.rename``/``os.replace`` to ``ROOT/AT`` (:data:`KILL_DRIVER` counts renames instead).
KILL_AT_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from purejaxrl_ppo.cli.commands import main

    root, at = os.path.abspath(sys.argv[1]), sys.argv[2]
    def hook(real):
        def hooked(src, dst, *args, **kwargs):
            if os.path.relpath(os.path.abspath(os.fspath(dst)), root) == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *args, **kwargs)
        return hooked
    os.rename, os.replace = hook(os.rename), hook(os.replace)
    sys.exit(main(sys.argv[3:]))
""")


def run_killed(argv: list, *, k: int | None = None, root: Path | None = None, at: str | None = None,
               timeout: float = 300):
    """``python -m purejaxrl_ppo ARGV...`` in a subprocess that SIGKILLs itself just before its ``k``-th rename
    (:data:`KILL_DRIVER`) or its first rename to ``root/at`` (:data:`KILL_AT_DRIVER`); asserts that it died so.
    Returns the ``CompletedProcess``."""
    import signal
    import subprocess

    driver = [KILL_DRIVER, str(k)] if k is not None else [KILL_AT_DRIVER, str(root), at]
    proc = subprocess.run([sys.executable, "-c", *driver, *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-3000:])
    return proc


def one_error_line(code: int, err: str, *needles: str) -> str:
    """Exit code 2 or 3, exactly one ``error:`` line in ``err`` (stderr), no traceback, every needle in that line."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert code in (2, 3), (code, lines[-20:])
    assert len(errors) == 1 and "Traceback" not in err, lines[-20:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def flip_byte(path: Path) -> None:
    """Flip one bit in the middle of the file ``path``."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


#: Keys of summaries, stage metrics and checkpoint meta that hold timings, the machine or the command line (they
#: differ between an interrupted and an uninterrupted run); ``without_timings`` drops them, and ``*_per_second``.
TIMING_KEYS = frozenset({"compile_seconds", "run_seconds", "wall_seconds", "timing", "command", "machine"})


def without_timings(value):
    """``value`` (JSON) without :data:`TIMING_KEYS` and ``*_per_second`` keys, at any depth."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if k not in TIMING_KEYS and not k.endswith("_per_second")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def read_checkpoint(step_dir: Path):
    """``(state, history, meta)`` of the checkpoint directory ``step_dir`` (a :class:`~purejaxrl_ppo.runs.checkpoint.
    Checkpointer` save) read by orbax alone, as NumPy trees: no abstract state, so any run's checkpoint reads."""
    import orbax.checkpoint as ocp

    handler = ocp.CompositeCheckpointHandler(state=ocp.StandardCheckpointHandler(),
                                             history=ocp.StandardCheckpointHandler(), meta=ocp.JsonCheckpointHandler())
    checkpointer = ocp.Checkpointer(handler)
    try:
        out = checkpointer.restore(Path(step_dir).absolute(), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), history=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    finally:
        checkpointer.close()
    return out.state, dict(out.history), dict(out.meta)


def assert_same_checkpoint(step_dir: Path, reference_dir: Path) -> None:
    """The checkpoints ``step_dir`` and ``reference_dir`` hold the same state and history bit for bit, and the same
    meta (timings aside)."""
    (state, history, meta), (state_ref, history_ref, meta_ref) = map(read_checkpoint, (step_dir, reference_dir))
    leaves_equal(state, state_ref)
    assert sorted(history) == sorted(history_ref)
    for name in history:
        np.testing.assert_array_equal(history[name], history_ref[name], err_msg=f"{step_dir}: history {name}")
    assert without_timings(meta) == without_timings(meta_ref)


def assert_same_npz(path: Path, reference: Path) -> None:
    """Two ``.npz`` files with the same arrays (bit for bit, NaN equal to NaN), then the same bytes."""
    with np.load(path) as a, np.load(reference) as b:
        assert sorted(a) == sorted(b), path
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{path}: {name}")
    assert path.read_bytes() == reference.read_bytes(), path


class Reference(NamedTuple):
    """An uninterrupted run of a fault test: its directory and the destination of each of its renames, in order
    (relative to ``out``)."""

    out: Path
    renames: tuple[str, ...]


def resume_outcome(resume, same, out: Path, reference: Path) -> str:
    """``resume(out) -> (code, stderr)`` after a fault: ``"resumed"`` when it exits 0 (then ``same(out, reference)``
    asserts the results equal), else its one ``error:`` line (then the run must not be finished)."""
    from purejaxrl_ppo.runs import rundir

    code, err = resume(out)
    if code == 0:
        same(out, reference)
        return "resumed"
    line = one_error_line(code, err)
    assert rundir.finished_problem(out) is not None, line
    return line


def every_rename(reference: Reference, tmp_path: Path, fault, outcome, not_resumable) -> None:
    """Fault the run at each rename ``k`` of ``reference`` (``fault(k, out)``), then check ``outcome(out)``: the
    one-line "cannot resume … run.json" error for ``k`` in ``not_resumable`` (before run.json), else
    ``"resumed"``. Every failing ``k`` is reported, not only the first."""
    import shutil

    from purejaxrl_ppo.runs import rundir

    failures = []
    for k in range(1, len(reference.renames) + 1):
        out = tmp_path / f"k{k}"
        try:
            fault(k, out)
            result = outcome(out)
            if k in not_resumable:
                assert "cannot resume" in result and rundir.RUN_FILE in result, result
            else:
                assert result == "resumed", result
        except Exception as err:  # noqa: BLE001 - every failing point is reported, not only the first
            failures.append(f"k={k} ({reference.renames[k - 1]}): {str(err)[:400]}")
        shutil.rmtree(out, ignore_errors=True)
    assert not failures, "\n".join(failures)


def crash(argv: list[str], out: Path, *, k: int | None = None, at: str | None = None) -> str:
    """``main(argv)`` in this process, crashing (:class:`Crash`) just before its ``k``-th rename or its rename to
    ``at``; the run must be left unfinished. Returns its stderr."""
    import contextlib
    import io

    from purejaxrl_ppo.cli.commands import main
    from purejaxrl_ppo.runs import rundir

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        hook = RenameHook(patch, out, k=k, at=at)
        with pytest.raises(Crash):
            main(argv)
    assert hook.crashed is not None and (at is None or hook.crashed == at)
    assert rundir.finished_problem(out) is not None
    return err.getvalue()


#: A sweep of 6 settings × 3 seeds, 8 updates in 4 chunks, the newest 2 checkpoints kept
#: (tests/launch/test_sweep_cli.py, tests/driver/test_sweep_faults.py: one program in the session's compile cache).
SWEEP_RUN_FILE = RUN_FILE.replace("num_seeds: 2\n", "learning_rate: 0.02    # large enough that the settings differ "
                                                    "within 8 updates\nnum_seeds: 3\n")
SWEEP_SETS = ["--set", "clip_eps=0.1,0.2,0.3", "--set", "ent_coef=0,0.05"]
