"""Our PPO against PureJaxRL's own code (luchris429/purejaxrl), same process, alternated.

    python benchmarks/peers/purejaxrl.py --purejaxrl-dir DIR [--configs cartpole minatar brax]
        [--seeds 1 16 64] [--rounds 2] [--max-steps-per-call N] [--separate] [--out FILE] [--quick]

PureJaxRL is not a package: ``DIR`` is a checkout (a folder holding ``purejaxrl/ppo.py``) or a bare
git directory (e.g. a mirror; its ``HEAD`` is read with ``git show``). Its files are never copied
into this project: at run time ``purejaxrl/ppo.py``, ``purejaxrl/ppo_continuous_action.py`` and
``purejaxrl/wrappers.py`` are written to a ``tempfile.TemporaryDirectory()``, patched there and
imported from there under private module names (``purejaxrl_peer_ppo``, ...; ``wrappers`` is in
``sys.modules`` only while they import).

Run-time patches (the only ones; everything else is PureJaxRL's code as committed):

1. ``wrappers.py``: the line ``import navix as nx`` becomes ``nx = None``. navix is not installed;
   only ``NavixGymnaxWrapper`` uses it, and neither ppo.py nor ppo_continuous_action.py does.
2. gymnax API: gymnax 1.0 (installed: our package needs it) returns six values from ``env.step``,
   ``(obs, state, reward, terminated, truncated, info)``, and adds ``terminated``, ``truncated`` and
   ``final_observation`` to ``info``; PureJaxRL was written against gymnax 0.0.x, whose ``step``
   returns ``(obs, state, reward, done, info)``. PureJaxRL's ``ppo`` module alone gets a ``gymnax``
   namespace whose ``make`` wraps the env in :class:`FiveValueStep`: ``done = terminated |
   truncated`` (what 0.0.x's ``done`` was) and ``info`` without the three 1.0 keys (PureJaxRL
   returns ``info`` of every step as its metrics, so keeping ``final_observation`` would add a
   copy of every observation to its output). The global ``gymnax.make`` is untouched: our package
   uses the six-value API in the same process.
3. Brax: nothing. ``ppo_continuous_action.py`` builds its env with ``BraxGymnaxWrapper`` (in
   ``wrappers.py``: ``brax.envs.get_environment(env_name, backend="positional")``, Brax's
   ``EpisodeWrapper(episode_length=1000, action_repeat=1)`` and ``AutoResetWrapper``), which
   returns five values itself and runs unchanged on brax 0.14.2; it imports only
   ``gymnax.environments.{environment, spaces}`` from gymnax, which 1.0 still has.

Configs (PureJaxRL's dict as its source gives it; ours is built from that same dict by
:func:`our_config`, so every shared hyperparameter is equal by construction):

* ``cartpole``: ``purejaxrl/ppo.py``'s ``__main__`` config (CartPole-v1, 4 envs x 128 steps,
  4 epochs x 4 minibatches, LR 2.5e-4 annealed, 5e5 steps, tanh 64x64); ours: the defaults.
* ``minatar``: ``purejaxrl/ppo.py`` at PureJaxRL's MinAtar settings, from
  ``examples/brax_minatar.ipynb`` ("PPO Gymnax MinAtar", "briefly tuned to do well on Gymnax's
  MinAtar environments"): 64 envs x 128 steps, 4 epochs x 8 minibatches, LR 5e-3 annealed,
  1e7 steps, relu 64x64, gamma 0.99, lambda 0.95, clip 0.2, ent 0.01, vf 0.5, grad norm 0.5;
  the notebook runs SpaceInvaders-MinAtar, here ``ENV_NAME`` is ``Breakout-MinAtar``.
* ``brax``: ``purejaxrl/ppo_continuous_action.py``'s ``__main__`` config (2048 envs x 10 steps,
  4 epochs x 32 minibatches, LR 3e-4 constant, gamma 0.99, lambda 0.95, clip 0.2, ent 0, vf 0.5,
  grad norm 0.5, tanh 256x256, NORMALIZE_ENV) on ``--brax-env`` (default ``hopper``, its own
  default) with a CPU-sized budget (``total_timesteps`` 5 updates = 102,400 steps instead of 5e7);
  ours on ``brax/<env>?backend=positional&episode_length=1000&action_repeat=1`` with
  ``normalize_observations`` and ``scale_rewards`` (for its ``NormalizeVecObservation`` /
  ``NormalizeVecReward``) and ``action_squash="clip"`` (its ``ClipAction``; ours also clips in
  the env). Differences that remain are listed in :data:`BRAX_DIFFERENCES`, and in the JSON.

Method, for each config and seed count: build ``jax.jit(jax.vmap(train))`` for both programs, time
``jitted.lower(keys).compile()`` of each (cold; same process, so the second compile may profit
from warm caches: the order alternates between points and is recorded), one warm-up call each,
then ``--rounds`` rounds of A B B A (A = ours, B = PureJaxRL) timed calls of the compiled
executables. env-steps/s = seeds x steps per seed / wall seconds. Both programs run the same
number of updates; ``--max-steps-per-call N`` lowers it so one call runs at most about N env steps
over all seeds (at least one update per seed): steady-state throughput, flagged ``steps_capped``.
``--separate`` also runs each program alone in a fresh subprocess: ours with purejaxrl_ppo imported
first (its XLA:CPU flag and unrolled threefry), PureJaxRL without purejaxrl_ppo ever imported and
without our XLA flag (jax's defaults, as its users run it). ``purejaxrl_ppo`` is imported first in
the main process, so both same-process programs get its XLA:CPU workaround and unrolled threefry.

:func:`run` takes the CLI's argument list and returns the results dict (``benchmarks/throughput.py``
can call it); the CLI writes JSON to ``--out`` and prints a markdown table.
"""

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
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

# Nothing here imports jax or purejaxrl_ppo at module level: the separate-process child that runs
# PureJaxRL must start without purejaxrl_ppo.

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "purejaxrl" / "purejaxrl.json"
FILES = {
    "wrappers": "purejaxrl/wrappers.py",
    "ppo": "purejaxrl/ppo.py",
    "ppo_continuous_action": "purejaxrl/ppo_continuous_action.py",
}
NAVIX_IMPORT = "import navix as nx"
NAVIX_PATCH = "nx = None  # patched at run time by benchmarks/peers/purejaxrl.py: navix is not installed"
#: Keys gymnax 1.0's ``Environment.step`` adds to ``info`` that 0.0.x did not have.
GYMNAX_1_INFO_KEYS = ("terminated", "truncated", "final_observation")
#: purejaxrl_ppo's XLA:CPU flag (purejaxrl_ppo.platform.CPU_DEADLOCK_FLAG), kept out of PureJaxRL's child.
OUR_XLA_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
PROGRAMS = ("ours", "purejaxrl")
ROUND_ORDER = ("ours", "purejaxrl", "purejaxrl", "ours")  # A B B A

_SHARED = {"GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5}
CONFIGS: dict[str, dict[str, Any]] = {
    "cartpole": {
        "script": "ppo",
        "source": "purejaxrl/ppo.py, __main__ config (DEBUG off)",
        "hidden_sizes": (64, 64),
        "purejaxrl": {
            "LR": 2.5e-4, "NUM_ENVS": 4, "NUM_STEPS": 128, "TOTAL_TIMESTEPS": 500_000, "UPDATE_EPOCHS": 4,
            "NUM_MINIBATCHES": 4, **_SHARED, "ENT_COEF": 0.01, "ACTIVATION": "tanh", "ENV_NAME": "CartPole-v1",
            "ANNEAL_LR": True, "DEBUG": False,
        },
        "quick_updates": 8,
    },
    "minatar": {
        "script": "ppo",
        "source": "purejaxrl/ppo.py with examples/brax_minatar.ipynb's 'PPO Gymnax MinAtar' config "
                  "(the notebook's ENV_NAME SpaceInvaders-MinAtar replaced by Breakout-MinAtar)",
        "hidden_sizes": (64, 64),
        "purejaxrl": {
            "LR": 5e-3, "NUM_ENVS": 64, "NUM_STEPS": 128, "TOTAL_TIMESTEPS": 10_000_000, "UPDATE_EPOCHS": 4,
            "NUM_MINIBATCHES": 8, **_SHARED, "ENT_COEF": 0.01, "ACTIVATION": "relu", "ENV_NAME": "Breakout-MinAtar",
            "ANNEAL_LR": True, "DEBUG": False,
        },
        "quick_updates": 2,
    },
    "brax": {
        "script": "ppo_continuous_action",
        "source": "purejaxrl/ppo_continuous_action.py, __main__ config (DEBUG off) with TOTAL_TIMESTEPS "
                  "5 updates (CPU-sized; 5e7 in the file) and ENV_NAME from --brax-env (hopper in the file)",
        "hidden_sizes": (256, 256),
        "purejaxrl": {
            "LR": 3e-4, "NUM_ENVS": 2048, "NUM_STEPS": 10, "TOTAL_TIMESTEPS": 5 * 2048 * 10, "UPDATE_EPOCHS": 4,
            "NUM_MINIBATCHES": 32, **_SHARED, "ENT_COEF": 0.0, "ACTIVATION": "tanh", "ENV_NAME": "hopper",
            "ANNEAL_LR": False, "NORMALIZE_ENV": True, "DEBUG": False,
        },
        "quick_updates": 1,
    },
}
#: BraxGymnaxWrapper's fixed settings (wrappers.py), which ours takes through the env name.
BRAX_BACKEND, BRAX_EPISODE_LENGTH, BRAX_ACTION_REPEAT = "positional", 1000, 1
BRAX_DIFFERENCES = (
    ("observation normalisation: PureJaxRL's NormalizeVecObservation updates mean/var with every env step's "
     "batch (count starts at 1e-4) and normalises with the updated statistics, unclipped; ours updates once per "
     "rollout, after it, acts with the statistics from before the rollout and clips to +-10"),
    ("reward scaling: PureJaxRL's NormalizeVecReward divides each step's reward by the std of the discounted "
     "return updated that step (no floor, no clip); ours scales the whole rollout by the std after folding in "
     "its returns, std floored at 1e-2, scaled rewards clipped to +-10"),
    ("episode ends: PureJaxRL uses Brax's EpisodeWrapper + AutoResetWrapper (a reset replays the episode's first "
     "state; a time-limit end is a termination, not bootstrapped); ours keeps its own step count, bootstraps "
     "truncations from the final observation and resets from a fresh key (a reset is computed every step "
     "and selected where done)"),
    ("outputs: PureJaxRL returns every step's LogWrapper info ([updates, steps, envs] arrays) as metrics; "
     "ours returns per-update metrics"),
)
DISCRETE_DIFFERENCES = (
    ("truncation: PureJaxRL treats done = terminated | truncated as an end (no bootstrap); ours bootstraps "
     "truncated episodes from the final observation"),
    ("outputs: PureJaxRL returns every step's LogWrapper info ([updates, steps, envs] arrays) as metrics; "
     "ours returns per-update metrics"),
)


# --------------------------------------------------------------------------- PureJaxRL's source


@dataclass(frozen=True)
class PureJaxRLSource:
    """Where PureJaxRL's files come from: a checkout folder or a bare git directory (its HEAD)."""

    path: Path
    kind: str  # "checkout" or "bare git"
    commit: str | None
    dirty: bool | None  # a checkout with local changes (None: not a git work tree, or a bare dir)

    def read(self, relpath: str) -> str:
        if self.kind == "checkout":
            return (self.path / relpath).read_text()
        return _git(["--git-dir", str(self.path), "show", f"HEAD:{relpath}"])

    def describe(self) -> dict:
        return {"dir": str(self.path), "kind": self.kind, "commit": self.commit, "dirty": self.dirty}


def _git(args: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def find_source(path: str | Path) -> PureJaxRLSource:
    """The PureJaxRL source at ``path``; raises ``FileNotFoundError`` saying what was expected."""
    path = Path(path).expanduser().resolve()
    if (path / FILES["ppo"]).is_file():
        try:
            commit = _git(["-C", str(path), "rev-parse", "HEAD"]).strip()
            dirty = bool(_git(["-C", str(path), "status", "--porcelain", "--", "purejaxrl"]).strip())
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            commit, dirty = None, None
        return PureJaxRLSource(path, "checkout", commit, dirty)
    if path.is_dir():
        try:
            commit = _git(["--git-dir", str(path), "rev-parse", "--verify", "HEAD^{commit}"]).strip()
            _git(["--git-dir", str(path), "cat-file", "-e", f"HEAD:{FILES['ppo']}"])
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            pass
        else:
            return PureJaxRLSource(path, "bare git", commit, None)
    raise FileNotFoundError(
        f"{path} is neither a PureJaxRL checkout (a folder with {FILES['ppo']}) nor a git directory whose "
        f"HEAD has {FILES['ppo']}; clone https://github.com/luchris429/purejaxrl and pass --purejaxrl-dir"
    )


def patch_wrappers(text: str) -> tuple[str, bool]:
    """wrappers.py with ``import navix as nx`` replaced by ``nx = None``; returns (text, applied)."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip() == NAVIX_IMPORT]
    for i in hits:
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        lines[i] = f"{indent}{NAVIX_PATCH}\n"
    return "".join(lines), bool(hits)


class FiveValueStep:
    """A gymnax >= 1.0 env with gymnax 0.0.x's ``step``: ``(obs, state, reward, done, info)``.

    ``done = terminated | truncated``; ``info`` loses the keys 1.0 added (:data:`GYMNAX_1_INFO_KEYS`).
    Everything else is the wrapped env's.
    """

    def __init__(self, env: Any):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def reset(self, key, params=None):
        return self._env.reset(key, params)

    def step(self, key, state, action, params=None):
        import jax.numpy as jnp

        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {k: v for k, v in info.items() if k not in GYMNAX_1_INFO_KEYS}
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


def compat_make(env_id: str, **kwargs: Any):
    """``gymnax.make`` for PureJaxRL: the env behind :class:`FiveValueStep`."""
    import gymnax

    env, params = gymnax.make(env_id, **kwargs)
    return FiveValueStep(env), params


#: What PureJaxRL's ``ppo`` module sees as ``gymnax`` (only ``make`` is used there).
COMPAT_GYMNAX = types.SimpleNamespace(make=compat_make, __name__="gymnax (five-value step, purejaxrl peer)")


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
class PureJaxRL:
    """PureJaxRL's modules, imported from a patched temporary copy."""

    source: PureJaxRLSource
    ppo: types.ModuleType
    ppo_continuous_action: types.ModuleType
    wrappers: types.ModuleType
    patches: list[str]

    def module(self, script: str) -> types.ModuleType:
        return getattr(self, script)


def load_purejaxrl(source: PureJaxRLSource, tmpdir: str | Path) -> PureJaxRL:
    """Copy PureJaxRL's three files into ``tmpdir``, patch them there and import them.

    ``tmpdir`` must outlive the returned modules' use (tracebacks read their source).
    """
    tmpdir = Path(tmpdir)
    patches = []
    for name, relpath in FILES.items():
        text = source.read(relpath)
        if name == "wrappers":
            text, applied = patch_wrappers(text)
            if applied:
                patches.append(f"wrappers.py: '{NAVIX_IMPORT}' -> 'nx = None'")
        (tmpdir / f"{name}.py").write_text(text)
    missing = object()
    saved = sys.modules.get("wrappers", missing)
    wrappers = _load_module("purejaxrl_peer_wrappers", tmpdir / "wrappers.py")
    sys.modules["wrappers"] = wrappers  # ppo.py: `from wrappers import ...`
    try:
        ppo = _load_module("purejaxrl_peer_ppo", tmpdir / "ppo.py")
        ppo_ca = _load_module("purejaxrl_peer_ppo_continuous_action", tmpdir / "ppo_continuous_action.py")
    finally:
        if saved is missing:
            sys.modules.pop("wrappers", None)
        else:
            sys.modules["wrappers"] = saved
    ppo.gymnax = COMPAT_GYMNAX  # this module only; the global gymnax.make stays gymnax's
    patches.append("ppo.py: module global gymnax -> namespace whose make() returns FiveValueStep envs "
                   "(done = terminated | truncated, info without gymnax 1.0's keys)")
    return PureJaxRL(source, ppo, ppo_ca, wrappers, patches)


def gymnax_patch_check(pjx: PureJaxRL) -> dict:
    """Facts for the JSON: the five-value adapter is PureJaxRL's, the global ``gymnax.make`` is not patched."""
    import gymnax

    return {
        "global_gymnax_make_is_gymnax": getattr(gymnax.make, "__module__", "").startswith("gymnax"),
        "purejaxrl_ppo_module_gymnax_is_adapter": pjx.ppo.gymnax is COMPAT_GYMNAX,
        "purejaxrl_ppo_continuous_action_uses_gymnax_make": hasattr(pjx.ppo_continuous_action, "gymnax"),
        "wrappers_left_in_sys_modules": "wrappers" in sys.modules and sys.modules["wrappers"] is pjx.wrappers,
    }


# --------------------------------------------------------------------------- configs


def updates_per_seed(name: str, num_seeds: int, max_steps_per_call: int | None, quick: bool) -> int:
    """Whole updates per seed: the config's budget, or fewer so one call runs <= ~max_steps_per_call (>= 1)."""
    cfg = CONFIGS[name]["purejaxrl"]
    batch = cfg["NUM_ENVS"] * cfg["NUM_STEPS"]
    updates = CONFIGS[name]["quick_updates"] if quick else max(1, int(cfg["TOTAL_TIMESTEPS"]) // batch)
    if max_steps_per_call:
        updates = min(updates, max(1, max_steps_per_call // (num_seeds * batch)))
    return updates


def purejaxrl_config(name: str, total_timesteps: int, brax_env: str = "hopper") -> dict:
    """PureJaxRL's config dict for ``name`` with ``total_timesteps`` per seed (a fresh copy)."""
    cfg = dict(CONFIGS[name]["purejaxrl"], TOTAL_TIMESTEPS=int(total_timesteps))
    if CONFIGS[name]["script"] == "ppo_continuous_action":
        cfg["ENV_NAME"] = brax_env
    return cfg


def our_env_name(cfg: dict, script: str) -> str:
    if script == "ppo_continuous_action":
        return (f"brax/{cfg['ENV_NAME']}?backend={BRAX_BACKEND}&episode_length={BRAX_EPISODE_LENGTH}"
                f"&action_repeat={BRAX_ACTION_REPEAT}")
    return cfg["ENV_NAME"]


def our_config_fields(name: str, cfg: dict) -> dict:
    """Our ``PPOConfig`` keywords for PureJaxRL's ``cfg`` (config ``name``)."""
    script = CONFIGS[name]["script"]
    fields = {
        "env_name": our_env_name(cfg, script),
        "total_timesteps": int(cfg["TOTAL_TIMESTEPS"]),
        "num_envs": cfg["NUM_ENVS"],
        "num_steps": cfg["NUM_STEPS"],
        "update_epochs": cfg["UPDATE_EPOCHS"],
        "num_minibatches": cfg["NUM_MINIBATCHES"],
        "learning_rate": cfg["LR"],
        "anneal_lr": cfg["ANNEAL_LR"],
        "gamma": cfg["GAMMA"],
        "gae_lambda": cfg["GAE_LAMBDA"],
        "clip_eps": cfg["CLIP_EPS"],
        "clip_value_loss": True,  # PureJaxRL clips the value loss
        "ent_coef": cfg["ENT_COEF"],
        "vf_coef": cfg["VF_COEF"],
        "max_grad_norm": cfg["MAX_GRAD_NORM"],
        "activation": cfg["ACTIVATION"],
        "hidden_sizes": tuple(CONFIGS[name]["hidden_sizes"]),
        "normalize_advantages": True,  # PureJaxRL normalises GAE per minibatch
    }
    if script == "ppo_continuous_action":
        fields.update(normalize_observations=bool(cfg["NORMALIZE_ENV"]), scale_rewards=bool(cfg["NORMALIZE_ENV"]),
                      action_squash="clip")
    return fields


def our_config(name: str, cfg: dict):
    import purejaxrl_ppo as pjp

    return pjp.PPOConfig(**our_config_fields(name, cfg))


def build_train(program: str, name: str, cfg: dict, pjx: PureJaxRL | None):
    """``train(key)`` of ``program`` for config ``name`` at PureJaxRL's ``cfg``."""
    if program == "ours":
        import purejaxrl_ppo as pjp

        return pjp.make_train(our_config(name, cfg))
    return pjx.module(CONFIGS[name]["script"]).make_train(dict(cfg))  # make_train adds keys to its dict


# --------------------------------------------------------------------------- measuring


def _compile(jitted, keys) -> tuple[Any, dict]:
    wall, cpu = time.perf_counter(), time.process_time()
    lowered = jitted.lower(keys)
    lower_s = time.perf_counter() - wall
    compiled = lowered.compile()
    return compiled, {"seconds": time.perf_counter() - wall, "lower_seconds": lower_s,
                      "cpu_seconds": time.process_time() - cpu}


def _call(compiled, keys) -> float:
    import jax

    start = time.perf_counter()
    out = compiled(keys)
    jax.block_until_ready(out)
    seconds = time.perf_counter() - start
    del out
    return seconds


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measure_same_process(name: str, num_seeds: int, updates: int, rounds: int, pjx: PureJaxRL,
                         brax_env: str, ours_compiles_first: bool, log=print) -> dict:
    """Compile both, warm up both, then ``rounds`` x A B B A timed calls; one point of the JSON."""
    import jax

    cfg = purejaxrl_config(name, 0, brax_env)
    batch = cfg["NUM_ENVS"] * cfg["NUM_STEPS"]
    cfg = purejaxrl_config(name, updates * batch, brax_env)
    steps = num_seeds * updates * batch
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    order = PROGRAMS if ours_compiles_first else PROGRAMS[::-1]
    compiled, compile_info = {}, {}
    for program in order:
        jitted = jax.jit(jax.vmap(build_train(program, name, cfg, pjx)))
        compiled[program], compile_info[program] = _compile(jitted, keys)
        log(f"  {name} seeds={num_seeds} {program}: compiled in {compile_info[program]['seconds']:.1f} s")
    warmup = {program: _call(compiled[program], keys) for program in order}
    calls = []
    for r in range(rounds):
        for position, program in enumerate(ROUND_ORDER):
            seconds = _call(compiled[program], keys)
            calls.append({"round": r, "position": position, "program": program, "seconds": seconds,
                          "env_steps_per_second": steps / seconds})
    sps = {p: [c["env_steps_per_second"] for c in calls if c["program"] == p] for p in PROGRAMS}
    pairs = [a / b for a, b in zip(sps["ours"], sps["purejaxrl"])]  # A B B A: the k-th of each are adjacent
    medians = {p: _median(v) for p, v in sps.items()}
    point = {
        "config": name, "num_seeds": num_seeds, "updates_per_seed": updates,
        "total_timesteps_per_seed": updates * batch,
        "nominal_total_timesteps_per_seed": int(CONFIGS[name]["purejaxrl"]["TOTAL_TIMESTEPS"]),
        "env_steps_per_call": steps,
        "steps_capped": updates * batch < int(CONFIGS[name]["purejaxrl"]["TOTAL_TIMESTEPS"]) // batch * batch,
        "compile_order": list(order), "compile": compile_info, "warmup_seconds": warmup,
        "calls": calls,
        "env_steps_per_second": sps,
        "median_env_steps_per_second": medians,
        "ratio_of_medians": medians["ours"] / medians["purejaxrl"] if medians["purejaxrl"] else None,
        "pair_ratios": pairs,
        "median_pair_ratio": _median(pairs),
        "loadavg_after": list(os.getloadavg()),
    }
    log(f"  {name} seeds={num_seeds}: ours {medians['ours'] / 1e3:.1f}k, PureJaxRL {medians['purejaxrl'] / 1e3:.1f}k "
        f"env-steps/s, median pair ratio {point['median_pair_ratio']:.3f}")
    return point


def child_main(spec: dict) -> dict:
    """One program alone in this (fresh) process: cold compile, warm-up, ``calls`` timed calls."""
    program, name = spec["program"], spec["config"]
    if program == "ours":
        import purejaxrl_ppo  # noqa: F401  (first: its XLA:CPU flag and threefry lowering)
    import jax

    tmp = None
    pjx = None
    try:
        if program == "purejaxrl":
            tmp = tempfile.TemporaryDirectory(prefix="purejaxrl-peer-")
            pjx = load_purejaxrl(find_source(spec["purejaxrl_dir"]), tmp.name)
        cfg = purejaxrl_config(name, 0, spec["brax_env"])
        batch = cfg["NUM_ENVS"] * cfg["NUM_STEPS"]
        cfg = purejaxrl_config(name, spec["updates"] * batch, spec["brax_env"])
        steps = spec["num_seeds"] * spec["updates"] * batch
        keys = jax.random.split(jax.random.PRNGKey(0), spec["num_seeds"])
        compiled, compile_info = _compile(jax.jit(jax.vmap(build_train(program, name, cfg, pjx))), keys)
        warmup = _call(compiled, keys)
        seconds = [_call(compiled, keys) for _ in range(spec["calls"])]
    finally:
        if tmp is not None:
            tmp.cleanup()
    sps = [steps / s for s in seconds]
    return {
        "program": program, "config": name, "num_seeds": spec["num_seeds"], "env_steps_per_call": steps,
        "compile": compile_info, "warmup_seconds": warmup, "seconds": seconds, "env_steps_per_second": sps,
        "median_env_steps_per_second": _median(sps),
        "purejaxrl_ppo_imported": "purejaxrl_ppo" in sys.modules,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def child_env(program: str) -> dict:
    """The environment of a separate-process child: no persistent compile cache; PureJaxRL without our XLA flag."""
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if program == "purejaxrl":
        flags = " ".join(t for t in env.get("XLA_FLAGS", "").split() if t != OUR_XLA_FLAG)
        if flags:
            env["XLA_FLAGS"] = flags
        else:
            env.pop("XLA_FLAGS", None)
    return env


def measure_separate(program: str, spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps({**spec, "program": program})]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=child_env(program),
                              cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"program": program, "error": f"timed out after {timeout:.0f} s (an XLA:CPU hang?)"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"program": program, "error": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"}


# --------------------------------------------------------------------------- report


def _versions() -> dict:
    out = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "gymnax", "brax", "distrax", "chex", "numpy", "mujoco"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine_info(argv: list[str]) -> dict:
    import jax

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    try:
        ours_commit = _git(["-C", str(ROOT), "rev-parse", "HEAD"]).strip()
        ours_dirty = bool(_git(["-C", str(ROOT), "status", "--porcelain", "--", "purejaxrl_ppo"]).strip())
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        ours_commit, ours_dirty = None, None
    import purejaxrl_ppo
    from purejaxrl_ppo.runs.provenance import code_version

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, str(Path(__file__).resolve()), *argv]),
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "cpu_count": os.cpu_count(), "available_cores": cores,
        "jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()],
        "versions": {**_versions(), "purejaxrl_ppo": purejaxrl_ppo.__version__},
        "purejaxrl_ppo_commit": ours_commit, "purejaxrl_ppo_dirty": ours_dirty,
        "code": code_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax_default_threefry_opt_out": os.environ.get("PUREJAXRL_PPO_JAX_DEFAULT_THREEFRY"),
        "persistent_compilation_cache": jax.config.jax_compilation_cache_dir,
        "loadavg_at_start": list(os.getloadavg()),
    }


def _k(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e3:.1f}"


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown_table(results: dict) -> str:
    header = ("| config | seeds | steps/seed per call | ours k steps/s | PureJaxRL k steps/s | ours/PureJaxRL same "
              "process (median of A/B pairs) | ours/PureJaxRL separate processes | compile s ours / PureJaxRL |")
    rows = [header, "|---|---|---|---|---|---|---|---|"]
    separate = {(p["config"], p["num_seeds"]): p for p in results["separate_process"]}
    for p in results["same_process"]:
        med = p["median_env_steps_per_second"]
        sep = separate.get((p["config"], p["num_seeds"]), {})
        first = "ours" if p["compile_order"][0] == "ours" else "PureJaxRL"
        capped = " (capped)" if p["steps_capped"] else ""
        rows.append(
            f"| {p['config']} | {p['num_seeds']} | {p['total_timesteps_per_seed']:,}{capped} | {_k(med['ours'])} | "
            f"{_k(med['purejaxrl'])} | {_r(p['median_pair_ratio'])} | {_r(sep.get('ratio'))} | "
            f"{p['compile']['ours']['seconds']:.1f} / {p['compile']['purejaxrl']['seconds']:.1f} ({first} first) |"
        )
    return "\n".join(rows)


def save(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purejaxrl-dir", default=os.environ.get("PUREJAXRL_DIR"),
                        help="PureJaxRL checkout or bare git dir (default: $PUREJAXRL_DIR)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--rounds", type=int, default=2, help="A B B A rounds (4 timed calls each)")
    parser.add_argument("--max-steps-per-call", type=int, default=None,
                        help="fewer updates per seed so one call runs at most ~N env steps over all seeds "
                             "(at least one update); steady-state throughput")
    parser.add_argument("--brax-env", default="hopper", help="Brax task of the brax config (PureJaxRL's default)")
    parser.add_argument("--brax-seeds", nargs="+", type=int, default=None,
                        help="seed counts for the brax config (default: --seeds); its 2048 envs make one update "
                             "20,480 env steps per seed, minutes per call on a CPU at 16+ seeds")
    parser.add_argument("--separate", action="store_true", help="also time each program alone in a fresh process")
    parser.add_argument("--separate-calls", type=int, default=2, help="timed calls per separate-process run")
    parser.add_argument("--child-timeout", type=float, default=1800.0, help="seconds per separate-process run")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny budgets, 1 seed, 1 round")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None and not args.purejaxrl_dir:
        parser.error("--purejaxrl-dir is required (or set PUREJAXRL_DIR)")
    if args.quick:
        args.seeds, args.brax_seeds, args.rounds, args.separate_calls = [1], None, 1, 1
    if min(args.seeds) < 1 or args.rounds < 1 or args.separate_calls < 1:
        parser.error("--seeds, --rounds and --separate-calls must be positive")
    return args


def run(argv: list[str], log=print) -> dict:
    """Run the benchmark for CLI arguments ``argv``; writes ``--out`` and returns the results dict."""
    args = parse_args(argv)
    import purejaxrl_ppo  # noqa: F401  (first, before any jax computation: XLA:CPU flag, unrolled threefry)

    source = find_source(args.purejaxrl_dir)
    results: dict[str, Any] = {
        "benchmark": "ours vs PureJaxRL PPO, same process, alternated A B B A",
        "machine": machine_info(argv),
        "purejaxrl": source.describe(),
        "settings": {"configs": args.configs, "seeds": args.seeds, "brax_seeds": args.brax_seeds or args.seeds, "rounds": args.rounds,
                     "round_order": list(ROUND_ORDER), "max_steps_per_call": args.max_steps_per_call,
                     "quick": args.quick, "separate": args.separate, "separate_calls": args.separate_calls,
                     "brax_env": args.brax_env},
        "configs": {},
        "same_process": [],
        "separate_process": [],
        "notes": [
            ("env-steps/s = seeds x updates x num_envs x num_steps / wall seconds of one call of the compiled "
             "executable (outputs included, blocked until ready)"),
            ("compile = jitted.lower(keys).compile() wall seconds; same process, so the second compile may profit "
             "from caches warmed by the first (compile_order alternates between points)"),
            ("steps_capped points (--max-steps-per-call) run fewer updates than the config's budget: "
             "steady-state throughput, not a full training run"),
        ],
    }
    with tempfile.TemporaryDirectory(prefix="purejaxrl-peer-") as tmp:
        pjx = load_purejaxrl(source, tmp)
        results["purejaxrl"]["patches"] = pjx.patches
        results["purejaxrl"]["gymnax_patch"] = gymnax_patch_check(pjx)
        for name in args.configs:
            cfg = purejaxrl_config(name, CONFIGS[name]["purejaxrl"]["TOTAL_TIMESTEPS"], args.brax_env)
            script = CONFIGS[name]["script"]
            results["configs"][name] = {
                "purejaxrl_script": FILES[script], "source": CONFIGS[name]["source"],
                "purejaxrl_config": cfg, "ours_config": our_config(name, cfg).to_dict(),
                "differences": list(BRAX_DIFFERENCES if script == "ppo_continuous_action" else DISCRETE_DIFFERENCES),
            }
        index = 0
        for name in args.configs:
            brax = CONFIGS[name]["script"] == "ppo_continuous_action"
            for seeds in (args.brax_seeds or args.seeds) if brax else args.seeds:
                updates = updates_per_seed(name, seeds, args.max_steps_per_call, args.quick)
                log(f"{name}: {seeds} seeds x {updates} updates, same process")
                point = measure_same_process(name, seeds, updates, args.rounds, pjx, args.brax_env,
                                             ours_compiles_first=index % 2 == 0, log=log)
                results["same_process"].append(point)
                index += 1
                if args.separate:
                    spec = {"config": name, "num_seeds": seeds, "updates": updates, "calls": args.separate_calls,
                            "brax_env": args.brax_env, "purejaxrl_dir": str(source.path)}
                    sep = {"config": name, "num_seeds": seeds, "updates_per_seed": updates}
                    for program in PROGRAMS:
                        log(f"{name}: {seeds} seeds, {program} alone in a fresh process")
                        sep[program] = measure_separate(program, spec, args.child_timeout)
                    a = sep["ours"].get("median_env_steps_per_second")
                    b = sep["purejaxrl"].get("median_env_steps_per_second")
                    sep["ratio"] = a / b if a and b else None
                    results["separate_process"].append(sep)
                results["machine"]["loadavg_at_end"] = list(os.getloadavg())
                results["table_markdown"] = markdown_table(results)
                save(results, args.out)
        results["purejaxrl"]["gymnax_patch"] = gymnax_patch_check(pjx)
    results["table_markdown"] = markdown_table(results)
    save(results, args.out)
    log(results["table_markdown"])
    log(f"wrote {args.out}")
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(child_main(json.loads(args.child))), flush=True)
        return
    # Cold compile times: no persistent compilation cache in this process (set before jax starts).
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    run(argv)


if __name__ == "__main__":
    main()
