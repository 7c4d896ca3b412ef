"""Our PPO against XLand-MiniGrid's own single-task PPO (dunnolab/xland-minigrid), same process, alternated.

    python benchmarks/peers/xland_ppo.py --xland-dir DIR [--seeds 1 16 64] [--rounds 2]
        [--max-steps-per-call N] [--num-envs N] [--out FILE] [--quick]

XLand-MiniGrid's baselines are scripts, not a package: ``DIR`` is a checkout (a folder holding
``training/train_single_task.py``) or a bare git directory (e.g. a mirror; its ``HEAD`` is read with
``git show``); default ``$XLAND_MINIGRID_DIR``. Its files are never copied into this project: at run
time ``training/train_single_task.py``, ``training/nn.py`` and ``training/utils.py`` are written to a
``tempfile.TemporaryDirectory()``, patched there and imported from there under private module names
(``xland_peer_train_single_task``, ``xland_peer_nn``, ``xland_peer_utils``; the names the script
imports them by, ``nn`` and ``utils``, are in ``sys.modules`` only while it imports). The environments
are the installed ``xminigrid`` package's, for both programs.

Run-time patches (the only ones; everything else is the script as committed):

1. ``import pyrallis`` and ``import wandb``: while the script imports, ``sys.modules`` holds stubs for
   both (``pyrallis.wrap()`` returns its function unchanged; ``wandb`` is empty). pyrallis is not
   installed; both serve only the script's CLI entry point ``train(config)`` (argument parsing,
   logging), which is not run here.
2. ``utils.py``'s ``RolloutStats`` (the evaluation's statistics) declares ``reward: jax.Array =
   jnp.asarray(0.0)`` and two fields like it; Python 3.11's dataclasses refuse an unhashable default
   (a jax array) at class creation, so the module would not import. Each becomes
   ``struct.field(default_factory=lambda: jnp.asarray(...))``: the same default, built per instance.
3. ``@partial(jax.pmap, axis_name="devices")`` on ``make_train``'s ``train`` becomes a comment, so
   ``make_train`` returns the plain function and it can be ``jax.jit(jax.vmap(...))``-ed over seeds.
   It runs under ``jax.vmap(..., axis_name="devices")`` over a device axis of size 1: what the
   script's pmap computes on one device (its ``jax.lax.pmean`` over ``"devices"`` in
   ``utils.ppo_update_networks`` averages over that one entry), with the script's own one-device
   argument layout (``jax.random.split(rng, 1)``, ``flax.jax_utils.replicate``'s leading axis).
   Their config must see one local device (``TrainConfig.__post_init__`` splits envs over devices).
4. The per-update evaluation (the block from ``# EVALUATE AGENT`` to its ``loss_info.update``: 80
   episodes of the current policy, sampled actions, ``eval_episodes``, with a ``pmean``) is cut; the
   update's ``"lr"`` metric is kept. Evaluation is not training: ours runs none either
   (``eval_every=0``).
5. Nothing else. The script's import-time ``jax.config.update("jax_threefry_partitionable", True)``
   runs as written: it is jax 0.10.2's default already (the JSON records the value before and after
   the import, so a change to the global that ours shares would show). flax 0.12.8 still has
   ``flax.typing`` and ``flax.linen.dtypes.promote_dtype``; xminigrid 0.9.3 has the wrappers the
   script uses. (``flax.jax_utils.replicate`` is imported but not called: it uses
   ``jax.device_put_replicated``, which jax 0.10 removed; the one-device axis of patch 3 is added
   with ``x[None]`` instead.)

The XLand program (:func:`make_their_train`). On the host, once: their ``make_states(config)`` (env
``DirectionObservationWrapper(GymAutoResetWrapper(...))``, ``ActorCriticRNN``, Adam with their linear
schedule) and ``make_train(env, env_params, config)``. Per seed key, inside the compiled program like
ours: ``make_states`` again with ``config.seed`` an int32 drawn from the key (the script seeds its
parameters and train rng from that one field, ``jax.random.key(config.seed)``), of which the rng, the
initial hidden state and the train state's arrays are kept, then the train function on one device
as in patch 3. The script's ``train()`` does the same on the host (plus wandb logging); per-seed
parameters make the seeds independent runs, as ours are. The per-seed initialisation runs one seed
at a time (``jax.lax.map``, via :func:`purejaxrl_ppo.core.networks.base.one_key_at_a_time`, as our
networks initialise): orthogonal initialisation is a LAPACK QR, and vmapped over seeds such batched
kernels deadlock XLA:CPU with jax 0.10.2; their program hung at 0% CPU with 2 seeds without it.
Same values; only the initialisation is sequential.

Configs. Theirs: their ``TrainConfig`` as the file gives it (``MiniGrid-Empty-6x6``, 8192 envs x 16
steps, 1 epoch x 16 minibatches, LR 1e-3 linearly annealed, gamma 0.99, lambda 0.95, clip 0.2,
entropy 0.01, value 0.5, gradient norm 0.5; a 1024-wide one-layer GRU, 256-wide tanh heads,
16-wide observation/action/direction embeddings; no bf16, symbolic observations), with the budget
set to whole updates: ``total_timesteps`` 1,000,000 (their default: 7 updates of 131,072 steps) or
fewer (``--max-steps-per-call``, ``--quick``). ``--num-envs`` (default theirs, 8192) shrinks the envs
of both programs on small machines, a recorded deviation. Ours: :func:`our_config` builds
``PPOConfig(policy="gru", shared_torso=True, ...)`` from their config object, so every shared
hyperparameter is equal by construction; the env is ``xland/<env_id>?view_size=V&max_steps=M`` with
V and M read from their ``env_params`` (7 and 144 for MiniGrid-Empty-6x6): both agents see the
same 7x7 egocentric view of the same grid. Differences that remain are listed in
:data:`DIFFERENCES`, and in the JSON.

Method, for each seed count in ``--seeds``: build ``jax.jit(jax.vmap(train))`` for both programs
over the same keys, time ``jitted.lower(keys).compile()`` of each (cold; same process, so the second
compile may profit from warm caches: the order alternates between points and is recorded), one
warm-up call each, then ``--rounds`` rounds of A B B A (A = ours, B = XLand) timed calls of the
compiled executables. env-steps/s = seeds x updates x num_envs x num_steps / wall seconds. Both run
the same number of updates; ``--max-steps-per-call N`` lowers it so one call runs at most about N
env steps over all seeds (at least one update per seed): steady-state throughput, flagged
``steps_capped``. ``purejaxrl_ppo`` is imported first, so both programs get its XLA:CPU workaround
and unrolled threefry lowering.

:func:`run` takes the CLI's argument list and returns the results dict; the CLI writes JSON to
``--out`` and prints one line per point.
"""

from __future__ import annotations  # noqa: I001  (purejaxrl_ppo must be imported before jax)

import argparse
import contextlib
import copy
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import purejaxrl_ppo as pjp  # first: the XLA:CPU workaround before jax starts

import jax
import jax.numpy as jnp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "xland_ppo" / "xland_ppo.json"
FILES = {
    "nn": "training/nn.py",
    "utils": "training/utils.py",
    "train_single_task": "training/train_single_task.py",
}
PROGRAMS = ("ours", "xland")
ROUND_ORDER = ("ours", "xland", "xland", "ours")  # A B B A

PMAP_LINE = '@partial(jax.pmap, axis_name="devices")'
#: utils.py's RolloutStats fields ``name: jax.Array = jnp.asarray(v)``: a default Python 3.11 refuses (patch 2).
ARRAY_DEFAULT = re.compile(r"^(?P<head>\s+\w+: jax\.Array = )(?P<value>jnp\.asarray\([^()]*\))(?P<tail>\s*)$")
ARRAY_DEFAULT_FIELDS = 3
EVAL_START = "# EVALUATE AGENT"
EVAL_END = "runner_state = (rng, train_state, timestep, prev_action, prev_reward, hstate)"
EVAL_REPLACEMENT = ('loss_info.update({"lr": train_state.opt_state[-1].hyperparams["learning_rate"]})'
                    "  # evaluation cut at run time by benchmarks/peers/xland_ppo.py")
#: nn.py's symbolic-observation encoder: three 2x2 VALID convs with these channels (hard-coded there).
THEIR_CONV_CHANNELS = (16, 32, 64)
#: Their TrainConfig's total_timesteps: the nominal budget per seed.
NOMINAL_TOTAL_TIMESTEPS = 1_000_000
QUICK_NUM_ENVS, QUICK_UPDATES = 32, 1

DIFFERENCES = (
    ("observation: theirs is DirectionObservationWrapper's dict, the 7x7x2 uint8 view plus the agent's "
     "direction one-hot [4]; ours is the same view (int32) alone, our xland adapter has no direction entry"),
    ("observation encoder: theirs embeds tile and colour ids (nn.Embed, 16 each -> 32 channels) and applies "
     "three 2x2 VALID relu convs (16, 32, 64 channels) -> 4x4x64 = 1024 features; ours feeds the ids as "
     "floats to an IMPALA CNN with cnn_channels (16, 32, 64) (per stage a 3x3 conv, 3x3/2 max-pool and two "
     "residual blocks: 7x7 -> 1x1x64 = 64 features) and then one Dense(256) tanh layer (hidden_sizes)"),
    ("memory inputs: theirs concatenates a direction embedding (Dense 16), the previous action's embedding "
     "(nn.Embed 16) and the previous reward to the image features, so the GRU input is 1024 + 16 + 16 + 1 "
     "= 1057 wide; ours has no previous action or reward input and a 256-wide GRU input"),
    ("GRU: both one layer of 1024 with the same gate equations (reset gate on the recurrent term plus its "
     "bias); theirs initialises input kernels glorot-normal and carries the hidden state across episode "
     "boundaries (never reset inside the rollout), ours lecun-normal and zeroes it at every episode start"),
    ("heads: both one shared torso with a 256-wide tanh hidden layer and an output per head; hidden-layer "
     "orthogonal gain 2 in theirs, sqrt(2) in ours (output gains 0.01 policy, 1.0 value in both)"),
    "Adam epsilon: theirs 1e-8, ours 1e-5 (ours also runs Adam on one flattened parameter vector)",
    ("episode ends: theirs treats timestep.last() (goal or time limit) as done without bootstrapping and "
     "auto-resets with GymAutoResetWrapper (a lax.cond, i.e. a select under vmap); ours bootstraps "
     "time-limit truncations from V(final observation), which costs one extra recurrent value step over "
     "all T x N transitions per update, and computes a reset every step and selects it where done"),
    ("parameter init: per seed inside the compiled program, one seed at a time (lax.map) for both; theirs "
     "via make_states with config.seed an int32 drawn from the seed key"),
    ("outputs: theirs returns the final runner state (train state, env timesteps, hidden states) and "
     "per-update losses; ours returns its TrainOutput (final state and per-update metrics)"),
    ("evaluation: their script evaluates 80 episodes after every update; cut here (patch 4), and ours "
     "runs none (eval_every=0)"),
)


# --------------------------------------------------------------------------- XLand-MiniGrid's source


@dataclass(frozen=True)
class XLandSource:
    """Where XLand-MiniGrid's training scripts come from: a checkout folder or a bare git directory (its HEAD)."""

    path: Path
    kind: str  # "checkout" or "bare git"
    commit: str | None
    dirty: bool | None  # a checkout with local changes under training/ (None: unknown, or a bare dir)

    def read(self, relpath: str) -> str:
        if self.kind == "checkout":
            return (self.path / relpath).read_text()
        return _git(["--git-dir", str(self.path), "show", f"HEAD:{relpath}"])

    def describe(self) -> dict:
        return {"dir": str(self.path), "kind": self.kind, "commit": self.commit, "dirty": self.dirty}


def _git(args: list[str]) -> str:
    done = subprocess.run(["git", *args], check=False, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def find_source(path: str | Path) -> XLandSource:
    """The XLand-MiniGrid source at ``path``; raises ``FileNotFoundError`` saying what was expected."""
    script = FILES["train_single_task"]
    path = Path(path).expanduser().resolve()
    if (path / script).is_file():
        try:
            commit = _git(["-C", str(path), "rev-parse", "HEAD"]).strip()
            dirty = bool(_git(["-C", str(path), "status", "--porcelain", "--", "training"]).strip())
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            commit, dirty = None, None
        return XLandSource(path, "checkout", commit, dirty)
    if path.is_dir():
        try:
            commit = _git(["--git-dir", str(path), "rev-parse", "--verify", "HEAD^{commit}"]).strip()
            _git(["--git-dir", str(path), "cat-file", "-e", f"HEAD:{script}"])
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            pass
        else:
            return XLandSource(path, "bare git", commit, None)
    raise FileNotFoundError(
        f"{path} is neither an XLand-MiniGrid checkout (a folder with {script}) nor a git directory whose HEAD "
        f"has {script}; clone https://github.com/dunnolab/xland-minigrid and pass --xland-dir"
    )


# --------------------------------------------------------------------------- run-time patches


def patch_train_script(text: str) -> str:
    """train_single_task.py with patches 3 and 4 of the module docstring; raises if either finds nothing."""
    lines = text.splitlines(keepends=True)
    pmap = [i for i, line in enumerate(lines) if line.strip() == PMAP_LINE]
    if len(pmap) != 1:
        raise RuntimeError(f"train_single_task.py: expected one line {PMAP_LINE!r}, found {len(pmap)}")
    i = pmap[0]
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = f"{indent}# {PMAP_LINE}  # removed at run time by benchmarks/peers/xland_ppo.py\n"
    start = [i for i, line in enumerate(lines) if line.strip() == EVAL_START]
    end = [i for i, line in enumerate(lines) if line.strip() == EVAL_END]
    if len(start) != 1 or len(end) != 1 or end[0] < start[0]:
        raise RuntimeError(f"train_single_task.py: expected one evaluation block from {EVAL_START!r} to "
                           f"{EVAL_END!r}; the script changed, review the patch")
    indent = lines[start[0]][: len(lines[start[0]]) - len(lines[start[0]].lstrip())]
    lines[start[0]:end[0]] = [f"{indent}{EVAL_REPLACEMENT}\n"]
    return "".join(lines)


def patch_utils(text: str) -> str:
    """utils.py with patch 2 of the module docstring; raises unless it finds RolloutStats' three fields."""
    lines = text.splitlines(keepends=True)
    hits = 0
    for i, line in enumerate(lines):
        match = ARRAY_DEFAULT.match(line)
        if match:
            lines[i] = (f"{match['head']}struct.field(default_factory=lambda: {match['value']})"
                        f"  # patched at run time by benchmarks/peers/xland_ppo.py{match['tail']}")
            hits += 1
    if hits != ARRAY_DEFAULT_FIELDS:
        raise RuntimeError(f"utils.py: expected {ARRAY_DEFAULT_FIELDS} 'name: jax.Array = jnp.asarray(...)' "
                           f"fields (RolloutStats), found {hits}; the file changed, review the patch")
    return "".join(lines)


def _stub_modules() -> dict[str, types.ModuleType]:
    """Patch 1: ``pyrallis`` (``wrap()`` an identity decorator) and an empty ``wandb``."""
    pyrallis = types.ModuleType("pyrallis")
    pyrallis.wrap = lambda *args, **kwargs: (lambda fn: fn)
    return {"pyrallis": pyrallis, "wandb": types.ModuleType("wandb")}


@contextlib.contextmanager
def _temporary_modules(modules: dict[str, types.ModuleType]):
    """``sys.modules`` holds ``modules`` inside the block; what those names held before comes back after."""
    missing = object()
    saved = {name: sys.modules.get(name, missing) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is missing:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _load_module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@dataclass
class XLandPeer:
    """XLand-MiniGrid's training modules, imported from a patched temporary copy."""

    source: XLandSource
    script: types.ModuleType  # train_single_task.py
    patches: list[str]
    threefry_partitionable: dict[str, bool]


def load_xland(source: XLandSource, tmpdir: str | Path) -> XLandPeer:
    """Write the three files into ``tmpdir``, patch the script there and import them.

    ``tmpdir`` must outlive the returned modules' use (tracebacks read their source).
    """
    tmpdir = Path(tmpdir)
    for name, relpath in FILES.items():
        text = source.read(relpath)
        if name == "train_single_task":
            text = patch_train_script(text)
        elif name == "utils":
            text = patch_utils(text)
        (tmpdir / f"{name}.py").write_text(text)
    before = bool(jax.config.jax_threefry_partitionable)
    nn = _load_module("xland_peer_nn", tmpdir / "nn.py")
    utils = _load_module("xland_peer_utils", tmpdir / "utils.py")
    with _temporary_modules({**_stub_modules(), "nn": nn, "utils": utils}):
        script = _load_module("xland_peer_train_single_task", tmpdir / "train_single_task.py")
    patches = [
        "utils.py: RolloutStats' jnp.asarray(...) defaults -> struct.field(default_factory=lambda: jnp.asarray(...))",
        "train_single_task.py: pyrallis and wandb stubbed in sys.modules while it imports (CLI and logging only)",
        f"train_single_task.py: '{PMAP_LINE}' commented out; train runs under jax.vmap(axis_name='devices') "
        "over a device axis of size 1 (pmap on one device)",
        f"train_single_task.py: the per-update evaluation block ('{EVAL_START}' .. its loss_info.update) "
        "replaced by loss_info.update({'lr': ...})",
    ]
    partitionable = {"before_import": before, "after_import": bool(jax.config.jax_threefry_partitionable)}
    return XLandPeer(source, script, patches, partitionable)


# --------------------------------------------------------------------------- configs


def their_config(peer: XLandPeer, total_timesteps: int, num_envs: int | None = None):
    """Their ``TrainConfig`` (the file's defaults) with ``total_timesteps`` per seed and optionally ``num_envs``."""
    changes: dict[str, Any] = {"total_timesteps": int(total_timesteps)}
    if num_envs is not None:
        changes["num_envs"] = int(num_envs)
    with contextlib.redirect_stdout(io.StringIO()):  # __post_init__ prints the device count
        cfg = peer.script.TrainConfig(**changes)
    if cfg.num_envs_per_device != cfg.num_envs:
        raise RuntimeError(f"their TrainConfig split {cfg.num_envs} envs over {jax.local_device_count()} devices; "
                           "run with one visible device (e.g. CUDA_VISIBLE_DEVICES=0)")
    unsupported = {"benchmark_id": None, "ruleset_id": None, "img_obs": False, "enable_bf16": False,
                   "rnn_num_layers": 1}
    for name, value in unsupported.items():
        if getattr(cfg, name) != value:
            raise ValueError(f"their config has {name}={getattr(cfg, name)!r}; this comparison supports only {value!r}")
    return cfg


def their_config_dict(cfg) -> dict:
    """Their config's fields plus what ``__post_init__`` derives, JSON-ready."""
    derived = ("num_envs_per_device", "total_timesteps_per_device", "eval_episodes_per_device", "num_updates")
    return {**dataclasses.asdict(cfg), **{name: getattr(cfg, name) for name in derived}}


def our_env_name(their) -> str:
    """``xland/<env_id>`` with the view size and episode limit of their env's params."""
    import xminigrid

    with jax.ensure_compile_time_eval():
        _, params = xminigrid.make(their.env_id)
    return f"xland/{their.env_id}?view_size={int(params.view_size)}&max_steps={int(params.max_steps)}"


def our_config(their) -> pjp.PPOConfig:
    """Our ``PPOConfig`` for their ``TrainConfig``: every shared hyperparameter read from it."""
    return pjp.PPOConfig(
        env_name=our_env_name(their),
        total_timesteps=int(their.total_timesteps),
        num_envs=their.num_envs,
        num_steps=their.num_steps,
        update_epochs=their.update_epochs,
        num_minibatches=their.num_minibatches,
        learning_rate=their.lr,
        anneal_lr=True,  # their linear_schedule: 1 - (count // (minibatches * epochs)) / num_updates
        gamma=their.gamma,
        gae_lambda=their.gae_lambda,
        clip_eps=their.clip_eps,
        clip_value_loss=True,  # utils.ppo_update_networks clips the value update to +-clip_eps
        ent_coef=their.ent_coef,
        vf_coef=their.vf_coef,
        max_grad_norm=their.max_grad_norm,
        normalize_advantages=True,  # per minibatch, as ppo_update_networks
        policy="gru",
        rnn_hidden_size=their.rnn_hidden_dim,
        hidden_sizes=(their.head_hidden_dim,),  # our heads' width; also our one encoder layer (DIFFERENCES)
        activation="tanh",  # their heads
        shared_torso=True,  # their ActorCriticRNN: one encoder and GRU, two heads
        torso="cnn",
        cnn_channels=THEIR_CONV_CHANNELS,
        eval_every=0,
    )


def updates_per_seed(batch: int, num_seeds: int, max_steps_per_call: int | None, quick: bool) -> int:
    """Whole updates per seed: the nominal budget, or fewer so one call runs <= ~max_steps_per_call (>= 1)."""
    updates = QUICK_UPDATES if quick else max(1, NOMINAL_TOTAL_TIMESTEPS // batch)
    if max_steps_per_call:
        updates = min(updates, max(1, max_steps_per_call // (num_seeds * batch)))
    return updates


# --------------------------------------------------------------------------- the two programs


def make_their_train(peer: XLandPeer, cfg):
    """``train(key)``: their setup and training loop for one seed (module docstring), on one emulated device."""
    from purejaxrl_ppo.core.networks.base import one_key_at_a_time

    script = peer.script
    # The env, its params, the network and the optimiser do not depend on the seed: built once, by make_states
    # itself, on the host (config.seed 42); each seed's arrays come from make_states again, in init.
    _, env, env_params, _, host_state = script.make_states(cfg)
    train_fn = script.make_train(env, env_params, cfg)

    def init(key: jax.Array):
        """make_states' arrays for the seed drawn from ``key``: rng, init_hstate [N, 1, H] and the train
        state's step, params and opt_state (its apply_fn and tx are new objects in every trace)."""
        seeded = copy.copy(cfg)
        seeded.seed = jax.random.randint(key, (), 0, jnp.iinfo(jnp.int32).max)
        rng, _, _, init_hstate, state = script.make_states(seeded)
        return rng, init_hstate, (state.step, state.params, state.opt_state)

    # One seed at a time under vmap (jax.lax.map), as our networks initialise: orthogonal init is a LAPACK
    # QR, and vmapped over seeds such batched kernels deadlock XLA:CPU with jax 0.10.2 (seen here too:
    # 2 seeds hung at 0% CPU). Same values; only the initialisation runs sequentially.
    init = one_key_at_a_time(init)

    def train(key: jax.Array):
        rng, init_hstate, (step, params, opt_state) = init(key)
        train_state = host_state.replace(step=step, params=params, opt_state=opt_state)
        # Their train(): rng split over the local devices and the state replicated, here one device.
        one_device = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], (train_state, init_hstate))
        out = jax.vmap(train_fn, axis_name="devices")(jax.random.split(rng, 1), *one_device)
        return jax.tree_util.tree_map(lambda x: x[0], out)

    return train


def build_train(program: str, cfg, peer: XLandPeer):
    """``train(key)`` of ``program`` at their config ``cfg``."""
    if program == "ours":
        return pjp.make_train(our_config(cfg))
    return make_their_train(peer, cfg)


# --------------------------------------------------------------------------- measuring


def _compile(jitted, keys) -> tuple[Any, dict]:
    wall, cpu = time.perf_counter(), time.process_time()
    lowered = jitted.lower(keys)
    lower_s = time.perf_counter() - wall
    compiled = lowered.compile()
    return compiled, {"seconds": time.perf_counter() - wall, "lower_seconds": lower_s,
                      "cpu_seconds": time.process_time() - cpu}


def _call(compiled, keys) -> float:
    start = time.perf_counter()
    out = compiled(keys)
    jax.block_until_ready(out)
    seconds = time.perf_counter() - start
    del out
    return seconds


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measure_point(num_seeds: int, updates: int, num_envs: int | None, rounds: int, peer: XLandPeer,
                  ours_compiles_first: bool, log=print) -> dict:
    """Compile both, warm up both, then ``rounds`` x A B B A timed calls; one point of the JSON."""
    probe = their_config(peer, NOMINAL_TOTAL_TIMESTEPS, num_envs)
    batch = probe.num_envs * probe.num_steps
    cfg = their_config(peer, updates * batch, num_envs)
    assert cfg.num_updates == updates == our_config(cfg).num_updates
    steps = num_seeds * updates * batch
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    order = PROGRAMS if ours_compiles_first else PROGRAMS[::-1]
    compiled, compile_info = {}, {}
    for program in order:
        jitted = jax.jit(jax.vmap(build_train(program, cfg, peer)))
        compiled[program], compile_info[program] = _compile(jitted, keys)
    warmup = {program: _call(compiled[program], keys) for program in order}
    calls = []
    for r in range(rounds):
        for position, program in enumerate(ROUND_ORDER):
            seconds = _call(compiled[program], keys)
            calls.append({"round": r, "position": position, "program": program, "seconds": seconds,
                          "env_steps_per_second": steps / seconds})
    sps = {p: [c["env_steps_per_second"] for c in calls if c["program"] == p] for p in PROGRAMS}
    pairs = [a / b for a, b in zip(sps["ours"], sps["xland"])]  # A B B A: the k-th of each are adjacent
    medians = {p: _median(v) for p, v in sps.items()}
    point = {
        "num_seeds": num_seeds, "num_envs": cfg.num_envs, "updates_per_seed": updates,
        "total_timesteps_per_seed": updates * batch,
        "nominal_total_timesteps_per_seed": NOMINAL_TOTAL_TIMESTEPS,
        "env_steps_per_call": steps,
        "steps_capped": updates < max(1, NOMINAL_TOTAL_TIMESTEPS // batch),
        "compile_order": list(order), "compile": compile_info, "warmup_seconds": warmup,
        "calls": calls,
        "env_steps_per_second": sps,
        "median_env_steps_per_second": medians,
        "ratio_of_medians": medians["ours"] / medians["xland"] if medians["xland"] else None,
        "pair_ratios": pairs,
        "median_pair_ratio": _median(pairs),
        "xland_config": their_config_dict(cfg),
        "ours_config": our_config(cfg).to_dict(),
        "loadavg_after": list(os.getloadavg()),
    }
    log(f"seeds={num_seeds} envs={cfg.num_envs} updates={updates}{' (capped)' if point['steps_capped'] else ''}: "
        f"ours {medians['ours']:,.0f}, XLand {medians['xland']:,.0f} env-steps/s, "
        f"ratio {point['ratio_of_medians']:.3f} (median pair {point['median_pair_ratio']:.3f}); "
        f"compile ours {compile_info['ours']['seconds']:.1f} s, XLand {compile_info['xland']['seconds']:.1f} s "
        f"({order[0]} first)")
    return point


# --------------------------------------------------------------------------- report


def _versions() -> dict:
    out = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "xminigrid", "distrax", "chex", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return {**out, "purejaxrl_ppo": pjp.__version__}


def save(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xland-dir", default=os.environ.get("XLAND_MINIGRID_DIR"),
                        help="XLand-MiniGrid checkout or bare git dir (default: $XLAND_MINIGRID_DIR)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--rounds", type=int, default=2, help="A B B A rounds (4 timed calls each)")
    parser.add_argument("--max-steps-per-call", type=int, default=None,
                        help="fewer updates per seed so one call runs at most ~N env steps over all seeds "
                             "(at least one update); steady-state throughput")
    parser.add_argument("--num-envs", type=int, default=None,
                        help="envs per seed for both programs (default: their TrainConfig's 8192; --quick: "
                             f"{QUICK_NUM_ENVS}); must be a multiple of their 16 minibatches")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: 1 seed, 1 round, {QUICK_UPDATES} update of {QUICK_NUM_ENVS} envs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.xland_dir:
        parser.error("--xland-dir is required (or set XLAND_MINIGRID_DIR)")
    if args.quick:
        args.seeds, args.rounds = [1], 1
        args.num_envs = args.num_envs or QUICK_NUM_ENVS
    if min(args.seeds) < 1 or args.rounds < 1 or (args.num_envs is not None and args.num_envs < 1):
        parser.error("--seeds, --rounds and --num-envs must be positive")
    return args


def run(argv: list[str], log=print) -> dict:
    """Run the benchmark for CLI arguments ``argv``; writes ``--out`` and returns the results dict."""
    args = parse_args(argv)
    from purejaxrl_ppo.runs.provenance import machine_description

    source = find_source(args.xland_dir)
    results: dict[str, Any] = {
        "benchmark": "ours vs XLand-MiniGrid's single-task PPO (training/train_single_task.py), same process, "
                     "alternated A B B A",
        "command": shlex.join([sys.executable, str(Path(__file__).resolve()), *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_description(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
                    "loadavg_at_start": list(os.getloadavg())},
        "versions": {**_versions(), "xland_minigrid_commit": source.commit},
        "xland_minigrid": source.describe(),
        "settings": {"seeds": args.seeds, "rounds": args.rounds, "round_order": list(ROUND_ORDER),
                     "max_steps_per_call": args.max_steps_per_call, "num_envs": args.num_envs,
                     "quick": args.quick},
        "differences": list(DIFFERENCES),
        "points": [],
        "notes": [
            ("env-steps/s = seeds x updates x num_envs x num_steps / wall seconds of one call of the compiled "
             "executable (outputs included, blocked until ready)"),
            ("compile = jitted.lower(keys).compile() wall seconds; same process, so the second compile may profit "
             "from caches warmed by the first (compile_order alternates between points)"),
            ("steps_capped points (--max-steps-per-call, --quick) run fewer updates than the nominal 1,000,000 "
             "steps per seed: steady-state throughput, not a full training run"),
            ("every call includes both programs' per-seed parameter initialisation, one seed after another: "
             "orthogonal init of the 1024-wide GRU kernels is a LAPACK QR of seconds per seed on a CPU (theirs "
             "one [3072, 1024], ours three [1024, 1024]); negligible beside an update of 8192 x 16 steps, "
             "dominant in --quick's 32 x 16"),
        ],
    }
    with tempfile.TemporaryDirectory(prefix="xland-peer-") as tmp:
        peer = load_xland(source, tmp)
        results["xland_minigrid"]["patches"] = peer.patches
        results["xland_minigrid"]["jax_threefry_partitionable"] = peer.threefry_partitionable
        nominal = their_config(peer, NOMINAL_TOTAL_TIMESTEPS, args.num_envs)
        results["configs"] = {"xland": their_config_dict(nominal), "ours": our_config(nominal).to_dict()}
        batch = nominal.num_envs * nominal.num_steps
        for index, seeds in enumerate(args.seeds):
            updates = updates_per_seed(batch, seeds, args.max_steps_per_call, args.quick)
            point = measure_point(seeds, updates, args.num_envs, args.rounds, peer,
                                  ours_compiles_first=index % 2 == 0, log=log)
            results["points"].append(point)
            results["machine"]["loadavg_at_end"] = list(os.getloadavg())
            save(results, args.out)
    save(results, args.out)
    log(f"wrote {args.out}")
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # Cold compile times: no persistent compilation cache in this process (jax has read the environment already).
    jax.config.update("jax_compilation_cache_dir", None)
    run(argv)


if __name__ == "__main__":
    main()
