"""Our PPO against Craftax's own PPO (MichaelTMatthews/Craftax_Baselines, ``ppo.py``), same process, alternated.

    python benchmarks/peers/craftax_ppo.py --craftax-baselines-dir DIR [--budget STEPS] [--num-envs N]
        [--no-optimistic-resets] [--seeds 1 16 64] [--rounds 2] [--max-steps-per-call N] [--out FILE] [--quick]

Craftax_Baselines is not a package: ``DIR`` (default ``$CRAFTAX_BASELINES_DIR``) is a checkout (a
folder holding ``ppo.py``) or a bare git directory (e.g. a mirror; its ``HEAD`` is read with ``git
show``). Its files are never copied into this project: at run time ``ppo.py`` and the files it
imports (``wrappers.py``, ``models/{__init__,actor_critic,icm}.py``, ``logz/{__init__,batch_logging}.py``)
are written to a ``tempfile.TemporaryDirectory()``, patched there and imported from there under
private module names (``craftax_baselines_peer_ppo``, ``craftax_baselines_peer_wrappers``, ...). Their
``ppo.py`` imports its siblings as top-level ``wrappers``, ``models.*`` and ``logz.*``: those names are
in ``sys.modules`` only while it imports, and whatever held them before is put back.

Run-time patches (the only ones; everything else is Craftax_Baselines' code as committed):

1. ``ppo.py`` and ``logz/batch_logging.py``: the line ``import wandb`` becomes ``wandb = None``. wandb is
   an optional extra here (our ``logging`` extra), and with ``USE_WANDB`` off nothing calls it: ``ppo.py``
   uses it only in ``run_ppo`` (not called: the benchmark calls ``make_train``) and, through
   ``batch_log``, in the debug callback that ``make_train`` compiles in only when ``DEBUG and
   USE_WANDB``.
2. ``ppo.py``: ``network_params = network.init(_rng, init_x)`` becomes
   ``network_params = one_key_at_a_time(lambda key: network.init(key, init_x))(_rng)`` (with
   ``from purejaxrl_ppo.core.networks.base import one_key_at_a_time`` on the line before): under
   ``vmap`` over seeds the network is initialised one seed per ``lax.map`` iteration, with the same
   values. Unpatched, their vmapped program hung on jax 0.10.2's CPU backend at 2 seeds (16 envs): run
   alone, its first call ran and its second waited in ``block_until_ready`` at almost no CPU until
   killed, and a smoke run of this benchmark hung after both compiles. That is the XLA:CPU deadlock
   :mod:`purejaxrl_ppo.platform` describes: batched LAPACK QR kernels (orthogonal initialisation under
   ``vmap``) waiting on each other in XLA's thread pool. Patched, 5 calls in a row ran. It changes only
   how the initialisation's QRs are scheduled (once per call, before training), not their values.

Nothing else needs patching on jax 0.10.2 / flax 0.12.8 / orbax-checkpoint 0.12.8 / craftax 1.6.1: the
orbax imports (``flax.training.orbax_utils``, ``orbax.checkpoint``; only ``run_ppo`` uses them) import
as they are, and ``OptimisticResetVecEnvWrapper`` (its ``jax.random.choice(..., p=done,
replace=False)``), ``AutoResetEnvWrapper``, ``LogWrapper`` and ``ActorCritic`` trace and run unchanged.

Seeds: their ``run_ppo`` builds ``make_train(config)`` for one key and runs ``jax.vmap(jax.jit(train))``
over ``NUM_REPEATS`` keys; here both programs are ``jax.jit(jax.vmap(train))`` over ``seeds`` keys
(the same program: jit of the vmap instead of vmap of the jit), with ``NUM_REPEATS = seeds``.

Their config (:func:`their_cli_defaults`, :func:`their_base_config`, :func:`their_config`): the
defaults of their ``__main__`` argument parser, read from
their ``ppo.py`` by executing its ``parser = argparse.ArgumentParser()`` and ``parser.add_argument``
statements and upper-cased as ``run_ppo`` does (``{k.upper(): v}``): 1024 envs x 64 steps, 4 epochs
x 8 minibatches, LR 2e-4 linearly annealed, gamma 0.99, GAE lambda 0.8, clip 0.2 (also the value
clip), entropy 0.01, value 0.5, gradient norm 1.0, ``LAYER_SIZE`` 512, optimistic resets with ratio
16, no ICM/E3B. Changed (:data:`THEIR_OVERRIDES` and the flags): ``ENV_NAME``
Craftax-Classic-Symbolic-v1 (their default is Craftax-Symbolic-v1); ``TOTAL_TIMESTEPS`` a CPU-sized
``--budget`` (default :data:`CPU_BUDGET`, 2 updates = 131,072 steps per seed; theirs is 1e9);
``USE_WANDB`` off (their ``--no-use_wandb``); ``SEED`` 0 (unused: keys are passed in);
``NUM_REPEATS`` the seed count; ``NUM_ENVS`` from ``--num-envs`` (default theirs; ``--quick`` 64);
``USE_OPTIMISTIC_RESETS`` off with ``--no-optimistic-resets`` (their ``--no-use_optimistic_resets``,
see :data:`DIFFERENCES`). ``DEBUG`` keeps their ``True``: ``make_train`` reads it only together with
``USE_WANDB``.

Our config is built from that same dict by :func:`our_config`, so every shared hyperparameter is
equal by construction: ``craftax/<ENV_NAME>``, the PPO fields, ``clip_value_loss`` and per-minibatch
advantage normalisation (theirs does both), and their network: separate actor and critic MLPs of
:data:`THEIR_HIDDEN_LAYERS` x ``LAYER_SIZE`` (``models/actor_critic.py``'s ``ActorCritic``: orthogonal
sqrt 2 hidden layers, heads 0.01 and 1.0, zero biases, as ours). :func:`network_check` initialises
both networks abstractly and records that their parameter shapes agree. What still differs is listed
in :data:`DIFFERENCES` (also in the JSON); the largest for throughput is that their
``OptimisticResetVecEnvWrapper`` generates ``NUM_ENVS / 16`` fresh Craftax worlds per step and ours
``NUM_ENVS``; with ``--no-optimistic-resets`` theirs generates ``2 x NUM_ENVS``, which brackets ours.

Method, for each seed count: build ``jax.jit(jax.vmap(train))`` for both programs over ``seeds`` PRNG
keys, time ``jitted.lower(keys).compile()`` of each (cold; the second compile of a point may profit
from caches warmed by the first, so the order alternates between points and is recorded), one
warm-up call each, then ``--rounds`` rounds of A B B A (A = ours, B = theirs) timed calls of the
compiled executables, each blocked until its outputs are ready. env-steps/s = seeds x updates x
num_envs x num_steps / wall seconds. Both programs run the same number of updates;
``--max-steps-per-call N`` lowers it so one call runs at most about N env steps over all seeds (at
least one update per seed), flagged ``steps_capped`` (both then anneal the learning rate over the
lowered number of updates). ``purejaxrl_ppo`` is imported first, before Craftax or any jax
computation, so both programs get its XLA:CPU workaround (it avoids XLA:CPU deadlocks) and its
unrolled threefry.

:func:`run` takes the CLI's argument list and returns the results dict; the CLI writes JSON to
``--out`` and prints one line per point.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.metadata
import importlib.util
import json
import os
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

# Nothing here imports jax, craftax or purejaxrl_ppo at module level: purejaxrl_ppo must come first.

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "craftax_ppo" / "craftax_ppo.json"
PROGRAMS = ("ours", "theirs")
ROUND_ORDER = ("ours", "theirs", "theirs", "ours")  # A B B A
ENV_NAME = "Craftax-Classic-Symbolic-v1"
#: Their files, relative to the repository root, written to the temporary directory in this layout.
FILES = ("ppo.py", "wrappers.py", "models/__init__.py", "models/actor_critic.py", "models/icm.py",
         "logz/__init__.py", "logz/batch_logging.py")
#: The names ppo.py imports its siblings by (``from wrappers import ...``, ``from models.icm import ...``).
SIBLINGS = {"wrappers": "wrappers.py", "models": "models/__init__.py", "models.actor_critic": "models/actor_critic.py",
            "models.icm": "models/icm.py", "logz": "logz/__init__.py", "logz.batch_logging": "logz/batch_logging.py"}
PRIVATE_PREFIX = "craftax_baselines_peer"
WANDB_IMPORT = "import wandb"
WANDB_PATCH = "wandb = None  # patched at run time by benchmarks/peers/craftax_ppo.py: wandb is not used"
#: Files whose ``import wandb`` is stubbed (:func:`stub_wandb`).
WANDB_FILES = ("ppo.py", "logz/batch_logging.py")
#: ppo.py's network initialisation, and what :func:`patch_network_init` makes of it (one seed at a time).
NETWORK_INIT = "network_params = network.init(_rng, init_x)"
NETWORK_INIT_PATCH = (
    "from purejaxrl_ppo.core.networks.base import one_key_at_a_time  # patched at run time by "
    "benchmarks/peers/craftax_ppo.py: XLA:CPU QR deadlock under vmap\n",
    "network_params = one_key_at_a_time(lambda key: network.init(key, init_x))(_rng)\n",
)
#: models/actor_critic.py's ActorCritic (their network for Symbolic envs): three Dense(LAYER_SIZE) layers
#: in the actor and three in the critic, each followed by its activation.
THEIR_HIDDEN_LAYERS = 3
#: Their own default budget (``--total_timesteps 1e9``), for the record.
THEIR_BUDGET = 1_000_000_000
#: This benchmark's default budget: 2 updates of their 1024 envs x 64 steps per seed.
CPU_BUDGET = 2 * 1024 * 64
QUICK_UPDATES, QUICK_NUM_ENVS = 1, 64

DIFFERENCES = (
    ("resets: ours generates a fresh Craftax world for every env at every step and selects it where the episode "
     "ended. Theirs with USE_OPTIMISTIC_RESETS (their default): OptimisticResetVecEnvWrapper generates "
     "NUM_ENVS / OPTIMISTIC_RESET_RATIO (= 1024 / 16 = 64) worlds per step and hands them to the envs that ended "
     "(picked with jax.random.choice over the done flags; envs ending in the same step may share a world). World "
     "generation is a large part of a Craftax step, so this alone favours theirs. Theirs without it "
     "(--no-optimistic-resets): the auto-resetting Craftax env (a world per env per step) under their "
     "AutoResetEnvWrapper (another world per env per step), 2 x NUM_ENVS worlds per step"),
    ("truncation: theirs treats done = is_terminal (death or the 10,000-step time limit) as an end, no bootstrap; "
     "ours bootstraps time-limit ends from V(final observation), one extra critic pass over the batch per update, "
     "and tests the terminal condition a second time without the limit at every step"),
    ("network: the same architecture (separate actor and critic, 3 x LAYER_SIZE tanh, orthogonal sqrt 2 hidden "
     "layers, heads orthogonal 0.01 and 1.0, zero biases; network_check in the JSON). Theirs is one flax module "
     "initialised from one key, ours two modules from split keys (same shapes, other initial values). Their "
     "ActorCritic is built without their ACTIVATION (it always uses its default, tanh); ours takes ACTIVATION, "
     "which is tanh at their default"),
    ("observations: neither normalises; both feed Craftax's flat float32 symbolic vector (1345 for Classic)"),
    ("logging: their LogWrapper tracks episode returns and lengths per env and step; their train returns only its "
     "final runner_state (train state, every env's state, last observations, key), so the per-update metric "
     "they compute is dropped; ours returns per-update metrics and its TrainState"),
    ("optimiser: both clip the global gradient norm, then Adam(eps=1e-5) with the same linear annealing per "
     "update; theirs runs optax on the parameter tree (flax TrainState), ours optax.flatten(...) on one vector"),
    ("minibatches: both shuffle the flattened [NUM_STEPS x NUM_ENVS] transitions each epoch; theirs with "
     "jax.random.permutation and jnp.take, ours with the same permutation computed by a faster sort on CPU"),
    ("random numbers: the same hyperparameters, not the same random streams (keys are split differently)"),
)


# --------------------------------------------------------------------------- Craftax_Baselines' source


def _git(args: list[str]) -> str:
    done = subprocess.run(["git", *args], check=False, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class BaselinesSource:
    """Where Craftax_Baselines' files come from: a checkout folder or a bare git directory (its HEAD)."""

    path: Path
    kind: str  # "checkout" or "bare git"
    commit: str | None
    dirty: bool | None  # a checkout with local changes (None: not a git work tree, or a bare dir)

    def read(self, relpath: str) -> str:
        if self.kind == "checkout":
            return (self.path / relpath).read_text()
        return _git(["--git-dir", str(self.path), "show", f"HEAD:{relpath}"])

    def describe(self) -> dict:
        return {"dir": str(self.path), "kind": self.kind, "commit": self.commit, "dirty": self.dirty,
                "repository": "https://github.com/MichaelTMatthews/Craftax_Baselines", "files": list(FILES)}


def find_source(path: str | Path) -> BaselinesSource:
    """The Craftax_Baselines source at ``path``; raises ``FileNotFoundError`` saying what was expected."""
    path = Path(path).expanduser().resolve()
    if (path / "ppo.py").is_file() and (path / "wrappers.py").is_file():
        try:
            commit = _git(["-C", str(path), "rev-parse", "HEAD"]).strip()
            dirty = bool(_git(["-C", str(path), "status", "--porcelain", "--", *FILES]).strip())
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            commit, dirty = None, None
        return BaselinesSource(path, "checkout", commit, dirty)
    if path.is_dir():
        try:
            commit = _git(["--git-dir", str(path), "rev-parse", "--verify", "HEAD^{commit}"]).strip()
            _git(["--git-dir", str(path), "cat-file", "-e", "HEAD:ppo.py"])
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            pass
        else:
            return BaselinesSource(path, "bare git", commit, None)
    raise FileNotFoundError(
        f"{path} is neither a Craftax_Baselines checkout (a folder with ppo.py and wrappers.py) nor a git "
        "directory whose HEAD has ppo.py; clone https://github.com/MichaelTMatthews/Craftax_Baselines and pass "
        "--craftax-baselines-dir"
    )


def stub_wandb(text: str) -> tuple[str, int]:
    """``text`` with each ``import wandb`` line replaced by ``wandb = None``; returns (text, lines replaced)."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip() == WANDB_IMPORT]
    for i in hits:
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        lines[i] = f"{indent}{WANDB_PATCH}\n"
    return "".join(lines), len(hits)


def patch_network_init(text: str) -> str:
    """ppo.py with its network initialisation run one seed at a time under ``vmap`` (patch 2 of the docstring).

    Raises ``RuntimeError`` unless :data:`NETWORK_INIT` is on exactly one line (their vmapped program
    would otherwise risk the XLA:CPU deadlock).
    """
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip() == NETWORK_INIT]
    if len(hits) != 1:
        raise RuntimeError(f"ppo.py has {len(hits)} lines '{NETWORK_INIT}' (expected 1): this benchmark's "
                           "run-time patch for the XLA:CPU QR deadlock no longer applies; update patch_network_init")
    i = hits[0]
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = "".join(indent + part for part in NETWORK_INIT_PATCH)
    return "".join(lines)


def _private_name(name: str) -> str:
    return f"{PRIVATE_PREFIX}_{name.replace('.', '_')}"


def _load_module(name: str, path: Path, package_dir: Path | None = None) -> types.ModuleType:
    locations = [str(package_dir)] if package_dir is not None else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@dataclass
class Baselines:
    """Craftax_Baselines' modules, imported from a patched temporary copy."""

    source: BaselinesSource
    ppo: types.ModuleType
    modules: dict[str, types.ModuleType]  # the siblings, by the name ppo.py imports them as
    ppo_text: str
    patches: list[str]


def load_baselines(source: BaselinesSource, tmpdir: str | Path) -> Baselines:
    """Write their files into ``tmpdir``, patch them there (:func:`stub_wandb`, :func:`patch_network_init`)
    and import them privately.

    ``tmpdir`` must outlive the returned modules' use (tracebacks read their source).
    """
    tmpdir = Path(tmpdir)
    patches = []
    texts = {}
    for relpath in FILES:
        text = source.read(relpath)
        if relpath in WANDB_FILES:
            text, hits = stub_wandb(text)
            if hits:
                patches.append(f"{relpath}: '{WANDB_IMPORT}' -> 'wandb = None' ({hits} line{'s' * (hits > 1)})")
        if relpath == "ppo.py":
            text = patch_network_init(text)
            patches.append(f"ppo.py: '{NETWORK_INIT}' -> 'network_params = one_key_at_a_time(lambda key: "
                           "network.init(key, init_x))(_rng)' (purejaxrl_ppo.core.networks.base; XLA:CPU QR "
                           "deadlock under vmap)")
        target = tmpdir / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        texts[relpath] = text
    missing = object()
    saved = {name: sys.modules.get(name, missing) for name in SIBLINGS}
    modules: dict[str, types.ModuleType] = {}
    try:
        for name, relpath in SIBLINGS.items():  # packages before their modules
            package_dir = (tmpdir / relpath).parent if relpath.endswith("__init__.py") else None
            modules[name] = _load_module(_private_name(name), tmpdir / relpath, package_dir)
            sys.modules[name] = modules[name]  # ppo.py: `from wrappers import ...`, `from models.icm import ...`
        ppo = _load_module(_private_name("ppo"), tmpdir / "ppo.py")
    finally:
        for name, module in saved.items():
            if module is missing:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return Baselines(source, ppo, modules, texts["ppo.py"], patches)


def import_check(cb: Baselines) -> dict:
    """Facts for the JSON: their siblings did not stay in ``sys.modules`` under the generic names."""
    return {name: sys.modules.get(name) is cb.modules[name] for name in SIBLINGS}


# --------------------------------------------------------------------------- configs


def _is_parser_statement(node: ast.stmt) -> bool:
    """``parser = argparse.ArgumentParser(...)`` or ``parser.add_argument(...)``."""
    if isinstance(node, ast.Assign):
        return [ast.unparse(t) for t in node.targets] == ["parser"] and ast.unparse(node.value).startswith(
            "argparse.ArgumentParser(")
    return isinstance(node, ast.Expr) and ast.unparse(node.value).startswith("parser.add_argument(")


def their_cli_defaults(ppo_text: str) -> dict:
    """Their ``__main__`` parser's defaults, upper-cased as ``run_ppo`` does (``{k.upper(): v}``).

    Runs the parser statements of ``ppo.py``'s ``if __name__ == "__main__":`` block and parses no
    arguments. Raises ``ValueError`` when the block or its parser is not found.
    """
    tree = ast.parse(ppo_text)
    mains = [node for node in tree.body if isinstance(node, ast.If)
             and ast.unparse(node.test) in ("__name__ == '__main__'", '__name__ == "__main__"')]
    statements = [node for main in mains for node in main.body if _is_parser_statement(node)]
    if not statements or not isinstance(statements[0], ast.Assign):
        raise ValueError("ppo.py has no `parser = argparse.ArgumentParser()` under `if __name__ == '__main__':`")
    namespace: dict[str, Any] = {"argparse": argparse}
    code = compile(ast.Module(body=statements, type_ignores=[]), "<Craftax_Baselines ppo.py: __main__ parser>", "exec")
    exec(code, namespace)  # noqa: S102  (their argument parser, nothing else)
    return {k.upper(): v for k, v in vars(namespace["parser"].parse_args([])).items()}


def updates_per_seed(batch: int, budget: int, num_seeds: int, max_steps_per_call: int | None, quick: bool) -> int:
    """Whole updates per seed: the budget's, or fewer so one call runs <= ~max_steps_per_call (>= 1)."""
    updates = QUICK_UPDATES if quick else max(1, budget // batch)
    if max_steps_per_call:
        updates = min(updates, max(1, max_steps_per_call // (num_seeds * batch)))
    return updates


#: What this benchmark changes in their defaults besides TOTAL_TIMESTEPS, NUM_REPEATS, NUM_ENVS and
#: USE_OPTIMISTIC_RESETS (see the docstring).
THEIR_OVERRIDES = {"ENV_NAME": ENV_NAME, "USE_WANDB": False, "SEED": 0}


def their_base_config(defaults: dict, num_envs: int | None, optimistic_resets: bool) -> dict:
    """``defaults`` with :data:`THEIR_OVERRIDES`, ``num_envs`` (``None``: theirs) and ``optimistic_resets``."""
    num_envs = int(defaults["NUM_ENVS"]) if num_envs is None else int(num_envs)
    return {**defaults, **THEIR_OVERRIDES, "NUM_ENVS": num_envs, "USE_OPTIMISTIC_RESETS": bool(optimistic_resets)}


def their_config(base: dict, updates: int, num_seeds: int) -> dict:
    """Their config dict for one point: ``base`` (:func:`their_base_config`) at ``updates`` per seed, ``num_seeds``."""
    cfg = {**base, "NUM_REPEATS": int(num_seeds)}
    cfg["TOTAL_TIMESTEPS"] = int(updates) * cfg["NUM_ENVS"] * cfg["NUM_STEPS"]
    return cfg


def check_their_config(cfg: dict) -> None:
    """Raise ``ValueError`` for a config their code would reject deep inside (asserts) or we do not compare."""
    ratio = min(cfg["OPTIMISTIC_RESET_RATIO"], cfg["NUM_ENVS"])
    if cfg["USE_OPTIMISTIC_RESETS"] and cfg["NUM_ENVS"] % ratio:
        raise ValueError(f"num envs = {cfg['NUM_ENVS']} is not divisible by their OPTIMISTIC_RESET_RATIO = {ratio} "
                         "(OptimisticResetVecEnvWrapper asserts it); choose a multiple of it")
    if (cfg["NUM_ENVS"] * cfg["NUM_STEPS"]) % cfg["NUM_MINIBATCHES"]:
        raise ValueError(f"num envs x num steps = {cfg['NUM_ENVS']} x {cfg['NUM_STEPS']} is not divisible by "
                         f"NUM_MINIBATCHES = {cfg['NUM_MINIBATCHES']}")
    if cfg["TRAIN_ICM"] or cfg["USE_E3B"] or "Symbolic" not in cfg["ENV_NAME"]:
        raise ValueError("only plain PPO (no ICM / E3B) on a Symbolic env is compared")


def our_config_fields(their: dict) -> dict:
    """Our ``PPOConfig`` keywords for their config dict ``their``: every shared value taken from it."""
    return {
        "env_name": f"craftax/{their['ENV_NAME']}",
        "total_timesteps": int(their["TOTAL_TIMESTEPS"]),
        "num_envs": int(their["NUM_ENVS"]),
        "num_steps": int(their["NUM_STEPS"]),
        "update_epochs": int(their["UPDATE_EPOCHS"]),
        "num_minibatches": int(their["NUM_MINIBATCHES"]),
        "learning_rate": float(their["LR"]),
        "anneal_lr": bool(their["ANNEAL_LR"]),
        "gamma": float(their["GAMMA"]),
        "gae_lambda": float(their["GAE_LAMBDA"]),
        "clip_eps": float(their["CLIP_EPS"]),
        "clip_value_loss": True,  # theirs clips the value update to +-CLIP_EPS
        "ent_coef": float(their["ENT_COEF"]),
        "vf_coef": float(their["VF_COEF"]),
        "max_grad_norm": float(their["MAX_GRAD_NORM"]),
        "normalize_advantages": True,  # theirs normalises GAE per minibatch
        "policy": "mlp",
        "hidden_sizes": (int(their["LAYER_SIZE"]),) * THEIR_HIDDEN_LAYERS,
        "activation": their["ACTIVATION"],
        "shared_torso": False,  # ActorCritic: separate actor and critic layers
        "normalize_observations": False,
        "scale_rewards": False,
        "eval_every": 0,
    }


def our_config(their: dict):
    """Our ``PPOConfig`` built from their config dict (see :func:`our_config_fields`)."""
    import purejaxrl_ppo as pjp

    return pjp.PPOConfig(**our_config_fields(their))


def build_train(program: str, their: dict, cb: Baselines):
    """``train(key)`` of ``program`` at their config ``their``."""
    if program == "ours":
        import purejaxrl_ppo as pjp

        return pjp.make_train(our_config(their))
    return cb.ppo.make_train(dict(their))  # make_train adds NUM_UPDATES and MINIBATCH_SIZE to its dict


def network_check(their: dict, cb: Baselines) -> dict:
    """Both networks initialised abstractly (``jax.eval_shape``): parameter counts and whether the shapes agree."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from purejaxrl_ppo.core.loop import components

    _, network, _ = components(our_config(their))
    env = cb.ppo.make_craftax_env_from_name(their["ENV_NAME"], not their["USE_OPTIMISTIC_RESETS"])
    params = env.default_params
    theirs_net = cb.ppo.ActorCritic(env.action_space(params).n, their["LAYER_SIZE"])
    obs = jnp.zeros((1, *env.observation_space(params).shape))
    key = jax.random.PRNGKey(0)
    shapes = {"ours": jax.eval_shape(network.init, key), "theirs": jax.eval_shape(theirs_net.init, key, obs)}
    leaves = {p: sorted(tuple(x.shape) for x in jax.tree.leaves(tree)) for p, tree in shapes.items()}
    return {
        "parameters": {p: int(sum(np.prod(s) for s in v)) for p, v in leaves.items()},
        "same_parameter_shapes": leaves["ours"] == leaves["theirs"],
        "their_network": type(theirs_net).__name__, "their_activation": theirs_net.activation,
        "our_activation": our_config(their).activation,
    }


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


def measure_point(base: dict, num_seeds: int, updates: int, rounds: int, budget: int, cb: Baselines,
                  ours_compiles_first: bool, log=print) -> dict:
    """Compile both, warm up both, then ``rounds`` x A B B A timed calls; one point of the JSON."""
    import jax

    their = their_config(base, updates, num_seeds)
    batch = their["NUM_ENVS"] * their["NUM_STEPS"]
    steps = num_seeds * updates * batch
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    order = PROGRAMS if ours_compiles_first else PROGRAMS[::-1]
    compiled, compile_info = {}, {}
    for program in order:
        compiled[program], compile_info[program] = _compile(jax.jit(jax.vmap(build_train(program, their, cb))), keys)
        log(f"  seeds={num_seeds} {program}: compiled in {compile_info[program]['seconds']:.1f} s")
    warmup = {program: _call(compiled[program], keys) for program in order}
    calls = []
    for r in range(rounds):
        for position, program in enumerate(ROUND_ORDER):
            seconds = _call(compiled[program], keys)
            calls.append({"round": r, "position": position, "program": program, "seconds": seconds,
                          "env_steps_per_second": steps / seconds})
    sps = {p: [c["env_steps_per_second"] for c in calls if c["program"] == p] for p in PROGRAMS}
    pairs = [a / b for a, b in zip(sps["ours"], sps["theirs"])]  # A B B A: the k-th of each are adjacent
    medians = {p: _median(v) for p, v in sps.items()}
    nominal = budget // batch * batch
    return {
        "env": their["ENV_NAME"], "num_seeds": num_seeds, "num_envs": their["NUM_ENVS"],
        "their_optimistic_resets": their["USE_OPTIMISTIC_RESETS"], "updates_per_seed": updates,
        "total_timesteps_per_seed": updates * batch,
        "nominal_total_timesteps_per_seed": nominal,
        "env_steps_per_call": steps,
        "steps_capped": updates * batch < nominal,
        "compile_order": list(order), "compile": compile_info, "warmup_seconds": warmup,
        "calls": calls,
        "env_steps_per_second": sps,
        "median_env_steps_per_second": medians,
        "ratio_of_medians": medians["ours"] / medians["theirs"] if medians["theirs"] else None,
        "pair_ratios": pairs,
        "median_pair_ratio": _median(pairs),
        "configs": {"theirs": their, "ours": our_config(their).to_dict()},
        "differences": list(DIFFERENCES),
        "loadavg_after": list(os.getloadavg()),
    }


def point_line(p: dict) -> str:
    """One printed line per point."""
    med, comp = p["median_env_steps_per_second"], p["compile"]
    capped = " (capped)" if p["steps_capped"] else ""
    resets = "optimistic" if p["their_optimistic_resets"] else "auto"
    return (f"{p['env']} seeds={p['num_seeds']} envs={p['num_envs']} updates/seed={p['updates_per_seed']}{capped}: "
            f"ours {med['ours'] / 1e3:.2f}k, Craftax_Baselines ({resets} resets) {med['theirs'] / 1e3:.2f}k "
            "env-steps/s, "
            f"ours/theirs {p['ratio_of_medians']:.2f} (median pair {p['median_pair_ratio']:.2f}); "
            f"compile ours {comp['ours']['seconds']:.1f} s, theirs {comp['theirs']['seconds']:.1f} s "
            f"({p['compile_order'][0]} first)")


# --------------------------------------------------------------------------- report


def _versions() -> dict:
    out = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "craftax", "distrax", "chex", "numpy", "orbax-checkpoint"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def save(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--craftax-baselines-dir", default=os.environ.get("CRAFTAX_BASELINES_DIR"),
                        help="Craftax_Baselines checkout or bare git dir (default: $CRAFTAX_BASELINES_DIR)")
    parser.add_argument("--budget", type=int, default=CPU_BUDGET,
                        help=f"env steps per seed (their TOTAL_TIMESTEPS; theirs is {THEIR_BUDGET:,})")
    parser.add_argument("--num-envs", type=int, default=None,
                        help=f"their NUM_ENVS (default: theirs, 1024; --quick: {QUICK_NUM_ENVS}); a multiple of 16")
    parser.add_argument("--no-optimistic-resets", dest="optimistic_resets", action="store_false",
                        help="their USE_OPTIMISTIC_RESETS off (their --no-use_optimistic_resets): auto-resetting env "
                             "under AutoResetEnvWrapper, 2 x NUM_ENVS worlds per step instead of NUM_ENVS / 16")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="seed counts (default: 1 16 64)")
    parser.add_argument("--rounds", type=int, default=None, help="A B B A rounds, 4 timed calls each (default: 2)")
    parser.add_argument("--max-steps-per-call", type=int, default=None,
                        help="fewer updates per seed so one call runs at most ~N env steps over all seeds "
                             "(at least one update); steady-state throughput")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {QUICK_UPDATES} update per seed, {QUICK_NUM_ENVS} envs, 1 seed and "
                             "1 round unless given")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.craftax_baselines_dir:
        parser.error("--craftax-baselines-dir is required (or set CRAFTAX_BASELINES_DIR)")
    if args.seeds is None:
        args.seeds = [1] if args.quick else [1, 16, 64]
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.num_envs is None and args.quick:
        args.num_envs = QUICK_NUM_ENVS
    if min(args.seeds) < 1 or args.rounds < 1 or args.budget < 1 or (args.num_envs is not None and args.num_envs < 1):
        parser.error("--seeds, --rounds, --budget and --num-envs must be positive")
    if args.max_steps_per_call is not None and args.max_steps_per_call < 1:
        parser.error(f"--max-steps-per-call must be positive, got {args.max_steps_per_call}")
    return args


def run(argv: list[str], log=print) -> dict:
    """Run the benchmark for CLI arguments ``argv``; writes ``--out`` and returns the results dict."""
    args = parse_args(argv)
    import purejaxrl_ppo  # noqa: F401  (first, before Craftax and any jax computation: XLA:CPU flag, threefry)
    from purejaxrl_ppo.runs.provenance import machine_description

    try:
        source = find_source(args.craftax_baselines_dir)
    except FileNotFoundError as err:
        raise SystemExit(f"craftax_ppo: {err}") from None
    with tempfile.TemporaryDirectory(prefix="craftax-baselines-peer-") as tmp:
        cb = load_baselines(source, tmp)
        defaults = their_cli_defaults(cb.ppo_text)
        base = their_base_config(defaults, args.num_envs, args.optimistic_resets)
        num_envs = base["NUM_ENVS"]
        batch = num_envs * int(base["NUM_STEPS"])
        nominal = their_config(base, max(1, args.budget // batch), 1)
        try:
            check_their_config(nominal)
        except ValueError as err:
            raise SystemExit(f"craftax_ppo: {err}") from None
        results: dict[str, Any] = {
            "benchmark": "ours vs Craftax_Baselines' ppo.py (MichaelTMatthews), same process, alternated A B B A",
            "command": shlex.join([sys.executable, str(Path(__file__).resolve()), *argv]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {**machine_description(), "available_cores": len(os.sched_getaffinity(0)),
                        "xla_flags": os.environ.get("XLA_FLAGS", ""), "loadavg_at_start": list(os.getloadavg())},
            "versions": {**_versions(), "purejaxrl_ppo": purejaxrl_ppo.__version__,
                         "craftax_baselines_commit": source.commit},
            "craftax_baselines": {**source.describe(), "patches": cb.patches,
                                  "generic_names_restored": not any(import_check(cb).values())},
            "settings": {"env": ENV_NAME, "budget": args.budget, "their_default_budget": THEIR_BUDGET,
                         "num_envs": num_envs, "their_optimistic_resets": args.optimistic_resets,
                         "seeds": args.seeds, "rounds": args.rounds,
                         "round_order": list(ROUND_ORDER), "max_steps_per_call": args.max_steps_per_call,
                         "quick": args.quick},
            "their_cli_defaults": defaults,
            "their_overrides": {**THEIR_OVERRIDES, "TOTAL_TIMESTEPS": "--budget (whole updates)",
                                "NUM_REPEATS": "the seed count", "NUM_ENVS": "--num-envs (default theirs)",
                                "USE_OPTIMISTIC_RESETS": "theirs (True) unless --no-optimistic-resets"},
            "configs": {"theirs": nominal, "ours": our_config(nominal).to_dict()},
            "network_check": network_check(nominal, cb),
            "differences": list(DIFFERENCES),
            "points": [],
            "notes": [
                ("env-steps/s = seeds x updates x num_envs x num_steps / wall seconds of one call of the compiled "
                 "executable (outputs included, blocked until ready)"),
                ("compile = jitted.lower(keys).compile() wall seconds; same process, so the second compile may "
                 "profit from caches warmed by the first (compile_order alternates between points)"),
                ("steps_capped points (--max-steps-per-call) run fewer updates than the budget: steady-state "
                 "throughput, not a full training run"),
            ],
        }
        log(f"Craftax_Baselines {source.commit} ({source.kind}); patches: {'; '.join(cb.patches) or 'none'}")
        for index, seeds in enumerate(args.seeds):
            updates = updates_per_seed(batch, args.budget, seeds, args.max_steps_per_call, args.quick)
            log(f"{ENV_NAME}: {seeds} seeds x {updates} updates of {num_envs} envs x {defaults['NUM_STEPS']} steps")
            point = measure_point(base, seeds, updates, args.rounds, args.budget, cb,
                                  ours_compiles_first=index % 2 == 0, log=log)
            results["points"].append(point)
            results["machine"]["loadavg_at_end"] = list(os.getloadavg())
            save(results, args.out)
            log(point_line(point))
    save(results, args.out)
    log(f"wrote {args.out}")
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # Cold compile times: no persistent compilation cache in this process (set before jax starts).
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    run(argv)


if __name__ == "__main__":
    main()
