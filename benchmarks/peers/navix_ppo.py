"""Our PPO against Navix's own PPO (``navix.agents.PPO``), same process, alternated.

    python benchmarks/peers/navix_ppo.py [--navix-dir DIR] [--envs Navix-Empty-5x5-v0 ...]
        [--observation symbolic] [--budget FRAMES] [--seeds 1 16 64] [--rounds 2]
        [--max-steps-per-call N] [--out FILE] [--quick]
        [--learning [--learning-seeds 8] [--no-throughput]]

Where Navix's PPO comes from: the installed ``navix`` package (0.7.4 here) ships it as
``navix/agents/ppo.py`` (``PPO``, ``PPOHparams``) with its network in ``navix/agents/models.py``
(``ActorCritic``, ``MLPEncoder``). It is imported from there: nothing is copied into this project
and nothing is patched. ``--navix-dir DIR`` (default ``$NAVIX_DIR``; a bare git directory such as
a mirror of github.com/epignatelli/navix, or a checkout) is optional and only read for provenance:
the JSON records its HEAD commit, the commit of the tag of the installed version, and whether the
installed ``agents/ppo.py``, ``agents/models.py``, ``agents/agent.py`` and
``environments/environment.py`` are byte-identical to that tag's (they are for 0.7.4). At the
repository's HEAD of 2026-08 (0.11.0) ``agents/ppo.py`` differs from 0.7.4 only in logging: the
debug callback's name and an extra ``iter/wall_time`` log.

Run-time patches: none. Two things from Navix's scripts are rebuilt here instead of imported,
because they live in scripts, not in the package (``baselines/ppo.py`` imports ``tyro`` and
``wandb`` at the top and runs ``tyro.cli`` under ``__main__``):

1. :func:`flatten_observations` is ``baselines/ppo.py``'s ``FlattenObsWrapper``, the same two lines:
   the env's ``observation_fn`` followed by ``jnp.ravel``, and its observation space reshaped.
2. The training call is what ``navix.Experiment.run`` does minus its wandb logging:
   ``jax.jit(jax.vmap(agent.train)).lower(keys).compile()``, then a call on the keys.

Navix's hyperparameters, as ``baselines/ppo.py`` (tag 0.7.4, unchanged at HEAD) gives them: it
trains ``PPO(hparams=PPOHparams(), network=ActorCritic(action_dim=len(env.action_set)),
env=FlattenObsWrapper(nx.make(env_id)))`` on every id of ``nx.registry()`` and logs
``"observations": "symbolic"``. So: ``PPOHparams``' defaults (16 envs x 128 steps, 1 epoch x 8
minibatches, LR 2.5e-4 linearly annealed, GAE lambda 0.95, clip 0.2 (also the value clip), entropy
0.01, value 0.5, gradient norm 0.5, advantages normalised per minibatch, value loss clipped, budget
1e6 frames per seed); ``nx.make``'s defaults (``max_steps`` 100, ``Environment.gamma`` 0.99, the
registry's ``observations.symbolic``, flattened); ``ActorCritic``'s defaults (separate actor and
critic ``MLPEncoder(hidden_size=64)``: Dense 64, tanh, Dense 64, tanh; heads orthogonal 0.01 and
1.0). Two changes, both flags: the budget is CPU-sized (``--budget``, default
:data:`CPU_BUDGET` = 100 updates = 204,800 frames per seed; ``--budget 1000000`` is theirs), and
``--observation symbolic_first_person`` switches both programs to ``examples/ppo.py``'s observation
(that script otherwise uses the same ``PPOHparams()`` on ``Navix-Empty-Random-5x5-v0``). ``--envs``
picks ids from ``nx.registry()`` (default ``Navix-Empty-5x5-v0``).

Our config is built from Navix's by :func:`our_config`, so every shared hyperparameter is equal by
construction: ``navix/<id>?observation=<obs>&max_steps=<their env's max_steps>`` with
``torso="mlp"`` (flatten the grid, as ``FlattenObsWrapper`` does), ``gamma`` = their env's ``gamma``,
``hidden_sizes`` = (their ``MLPEncoder.hidden_size``,) x 2, tanh, separate actor and critic, and the
PPO fields from ``PPOHparams``. What still differs is listed in :data:`DIFFERENCES` (also in the JSON).

Method, for each env and seed count: build ``jax.jit(jax.vmap(train))`` for both programs over
``seeds`` PRNG keys, time ``jitted.lower(keys).compile()`` of each (cold; the second compile of a
point may profit from caches warmed by the first, so the order alternates between points and is
recorded), one warm-up call each, then ``--rounds`` rounds of A B B A (A = ours, B = Navix) timed
calls of the compiled executables, each blocked until its outputs are ready. env-steps/s = seeds x
updates x num_envs x num_steps / wall seconds. Both programs run the same number of updates;
``--max-steps-per-call N`` lowers it so one call runs at most about N env steps over all seeds (at
least one update per seed), flagged ``steps_capped`` (both then anneal the learning rate over the
lowered number of updates). ``purejaxrl_ppo`` is imported first, before navix or any jax
computation, so both programs get its XLA:CPU workaround (it avoids XLA:CPU deadlocks) and its
unrolled threefry.

Learning comparison (``--learning``): for each env of ``--envs``, both programs train
``--learning-seeds`` seeds (default :data:`LEARNING_SEEDS`) for ``--budget`` env steps per seed
(whole updates: ``budget // (16 x 128)`` for both), each as one ``jax.jit(jax.vmap(train))`` over the
same keys ``jax.random.split(jax.random.PRNGKey(0), seeds)`` (keys are consumed differently inside, see
:data:`DIFFERENCES`); the program that compiles and trains first alternates between envs. Recorded
per env and program (JSON key ``"learning"``): each seed's final return, their IQM and mean with 95%
stratified-bootstrap CIs (``purejaxrl_ppo.analysis.study.aggregate_estimates``, 2000 resamples, over
the seeds whose final return is finite), the compile seconds and the wall seconds of the one blocked
training call, and the median-over-seeds return curve. Both final returns use ONE definition,
``purejaxrl_ppo.analysis.stats.final_returns`` of a ``[seeds, updates]`` array holding per update the
mean return of the episodes that ended in that update's rollout (NaN where none ended): the last
finished episode's return carried forward, averaged over the last 10 updates. The two arrays:

* ours: ``out.metrics["episode_return"]``, which is that already (``core/iteration.py``'s
  ``episode_metrics``: the undiscounted return of every episode that ended, by termination or
  truncation, at a step of the rollout).
* Navix's: :func:`navix_update_returns` of the ``logs["done_mask"]`` and ``logs["returns"]`` that
  their ``train`` returns (``[updates, num_steps, num_envs]`` per seed). In navix 0.7.4
  ``PPO.collect_experience`` stores ``done=new_env_state.is_done()`` (truncation or termination of the
  timestep *after* step t) and ``info=new_env_state.info``, ``PPO.update`` logs
  ``logs["done_mask"] = experience.done`` and ``logs["returns"] = experience.info["return"]``, and
  ``Environment._step`` sets ``info["return"] = previous info["return"] + reward`` (``reset`` sets it to
  0). So at a done step, ``returns`` is the undiscounted sum of the finished episode's rewards, its last
  (termination-penalised) reward included; the extra auto-reset step that follows has done False and
  return 0, so it never counts. The per-update value is ``mean(returns[done_mask])`` over that
  update's ``[num_steps, num_envs]`` -- exactly what ``Agent.log`` logs as ``perf/returns`` -- and NaN
  where no episode ended (their ``jnp.mean`` of an empty selection is NaN too).

``--learning`` runs the throughput points first and then the learning comparison;
``--learning --no-throughput`` runs the learning comparison alone (``"points"`` stays empty).
``--quick`` shortens only the throughput points, never the learning budget.

:func:`run` takes the CLI's argument list and returns the results dict; the CLI writes JSON to
``--out`` and prints one line per point and one per env and program of the learning comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

# Nothing here imports jax, navix or purejaxrl_ppo at module level: purejaxrl_ppo must come first.

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "navix_ppo" / "navix_ppo.json"
PROGRAMS = ("ours", "navix")
ROUND_ORDER = ("ours", "navix", "navix", "ours")  # A B B A
DEFAULT_ENVS = ("Navix-Empty-5x5-v0",)
#: The observation functions Navix's scripts use: baselines/ppo.py's and examples/ppo.py's.
SCRIPT_OBSERVATIONS = {"symbolic": "baselines/ppo.py", "symbolic_first_person": "examples/ppo.py"}
#: Navix's MLPEncoder: two Dense layers of ``hidden_size``, each followed by ``nn.tanh`` (hard-coded there).
NAVIX_ENCODER_LAYERS, NAVIX_ACTIVATION = 2, "tanh"
#: PPOHparams' own default budget (frames per seed), which baselines/ppo.py keeps.
NAVIX_BUDGET = 1_000_000
#: This benchmark's default budget: 100 updates of PPOHparams' 16 envs x 128 steps.
CPU_BUDGET = 100 * 16 * 128
QUICK_UPDATES = 2
#: Seeds per program in the learning comparison (``--learning-seeds``).
LEARNING_SEEDS = 8
#: Bootstrap resamples for the learning comparison's confidence intervals.
BOOTSTRAP_REPS = 2000
#: Files of the installed package compared with the repository's tag of the same version.
PROVENANCE_FILES = ("agents/ppo.py", "agents/models.py", "agents/agent.py", "environments/environment.py")

DIFFERENCES = (
    ("episode ends: navix's Environment.step resets on the call *after* an episode ends, so each episode costs "
     "Navix's PPO one extra env step (action ignored, reward 0, done False) whose transition (the terminal "
     "observation) it trains on; ours steps navix's _step and resets within the same step (a reset is computed "
     "every step and selected where done), so every env step is a real transition. Env steps per call are "
     "counted alike for both: updates x num_envs x num_steps"),
    ("truncation: Navix's PPO treats a time-limit end like a termination (done = is_done(), no bootstrap); ours "
     "bootstraps truncated steps from V(final observation), one extra critic pass over the batch per update"),
    ("discount: Navix's PPO gives rlax.truncated_generalized_advantage_estimation discount_t = (1 - done) * "
     "gamma ** t, with t the step's index within its episode, so the discount shrinks along an episode; ours "
     "uses the constant gamma"),
    ("values: Navix's PPO acts with the actor alone and evaluates V(o_t) after the rollout in one critic pass "
     "(re-done every epoch; 1 epoch here); ours evaluates actor and critic at every rollout step"),
    ("network init: Navix's MLPEncoder hidden layers use flax's default Dense init (lecun_normal kernels); ours "
     "orthogonal(sqrt 2). Heads (orthogonal 0.01 actor, 1.0 critic, zero biases), widths (2 x 64), tanh and "
     "separate actor and critic are the same"),
    ("observation: Navix's baselines flatten navix's uint8 symbolic grid (FlattenObsWrapper) and its Dense "
     "layers promote it to float32; our adapter casts it to int32 [H, W, 3] and torso='mlp' flattens it to "
     "float32: the same values reach the first layer"),
    ("optimiser: both clip the global gradient norm, then Adam(eps=1e-5) with the same linear annealing; Navix's "
     "runs optax.inject_hyperparams(adam) on the parameter tree, ours optax.flatten(...) on one vector"),
    ("outputs: Navix's train returns per update its loss means and the done_mask, returns and lengths of every "
     "step ([updates, num_steps, num_envs] each), plus its whole TrainingState; ours returns per-update metrics "
     "and its TrainState"),
    ("random numbers: the same hyperparameters, not the same random streams (keys are split differently; ours "
     "draws one key per env per step)"),
    ("Navix's train calls time.time() while it is traced, so its iter/fps log is meaningless under jit; ignored "
     "(its Experiment.run does the same)"),
)


# --------------------------------------------------------------------------- Navix's repository (provenance only)


def _git(args: list[str]) -> str:
    done = subprocess.run(["git", *args], check=False, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _git_dir_args(path: Path) -> list[str]:
    """``git`` arguments that read ``path``: a checkout (``-C``) or a bare git directory (``--git-dir``)."""
    return ["-C", str(path)] if (path / ".git").exists() else ["--git-dir", str(path)]


def navix_source(navix_dir: str | None, installed_version: str, installed_root: Path) -> dict:
    """Provenance of Navix's PPO: the installed package, and what the repository at ``navix_dir`` says of it.

    Records the repository's HEAD commit and version, the commit of the tag of the installed version
    (``0.7.4`` or ``v0.7.4``), whether each of :data:`PROVENANCE_FILES` installed is byte-identical to
    the tag's, and the blob hash of the tag's ``baselines/ppo.py`` (the hyperparameters' source).
    Raises ``FileNotFoundError`` when ``navix_dir`` is given but is no git repository.
    """
    out: dict[str, Any] = {"ppo_from": "installed navix package (navix.agents.PPO), imported, not copied or patched",
                           "installed_version": installed_version, "installed_at": str(installed_root),
                           "repository": None}
    if not navix_dir:
        return out
    path = Path(navix_dir).expanduser().resolve()
    git = _git_dir_args(path)
    try:
        head = _git([*git, "rev-parse", "--verify", "HEAD^{commit}"]).strip()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        raise FileNotFoundError(f"--navix-dir {path} is not a git checkout or bare git directory of navix "
                                f"(github.com/epignatelli/navix): {err}") from None
    repo: dict[str, Any] = {"dir": str(path), "kind": "checkout" if git[0] == "-C" else "bare git",
                            "head_commit": head, "head_version": None, "tag": None, "tag_commit": None,
                            "installed_matches_tag": None, "baselines_ppo_blob": None}
    try:
        version_file = _git([*git, "show", "HEAD:navix/_version.py"])
        repo["head_version"] = next((line.split("=")[1].strip().strip("\"'") for line in version_file.splitlines()
                                     if line.startswith("__version__")), None)
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        pass
    for tag in (installed_version, f"v{installed_version}"):
        try:
            repo["tag_commit"] = _git([*git, "rev-parse", "--verify", f"{tag}^{{commit}}"]).strip()
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            continue
        repo["tag"] = tag
        break
    if repo["tag"] is not None:
        matches = {}
        for rel in PROVENANCE_FILES:
            try:
                committed = _git([*git, "show", f"{repo['tag']}:navix/{rel}"])
            except (RuntimeError, OSError, subprocess.TimeoutExpired):
                matches[rel] = None
                continue
            matches[rel] = (installed_root / rel).read_text() == committed
        repo["installed_matches_tag"] = matches
        try:
            repo["baselines_ppo_blob"] = _git([*git, "rev-parse", f"{repo['tag']}:baselines/ppo.py"]).strip()
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            pass
    out["repository"] = repo
    return out


# --------------------------------------------------------------------------- configs


def import_navix_agents():
    """``(navix, navix.agents)``, imported on first use (navix builds jax arrays at import)."""
    import jax

    from purejaxrl_ppo.core.envs.navix_env import import_navix

    navix = import_navix()
    with jax.ensure_compile_time_eval():
        import navix.agents as agents
    return navix, agents


@dataclasses.dataclass(frozen=True)
class NavixSetup:
    """Navix's side of one point: the env as ``nx.make`` builds it and the agent's hyperparameters.

    ``hparams``: a ``navix.agents.PPOHparams``; ``max_steps`` and ``gamma``: the made env's;
    ``hidden_size``: ``MLPEncoder``'s (two tanh layers of it, for actor and critic each).
    """

    env_id: str
    observation: str
    max_steps: int
    gamma: float
    hidden_size: int
    hparams: Any

    @property
    def batch_size(self) -> int:
        return self.hparams.num_envs * self.hparams.num_steps

    def to_dict(self) -> dict:
        return {"env_id": self.env_id, "observation": self.observation, "flattened": True,
                "max_steps": self.max_steps, "gamma": self.gamma, "hidden_size": self.hidden_size,
                "encoder_layers": NAVIX_ENCODER_LAYERS, "activation": NAVIX_ACTIVATION,
                "hparams": dataclasses.asdict(self.hparams)}


def make_navix_env(env_id: str, observation: str):
    """``nx.make(env_id)`` as Navix's scripts call it (the observation only where it is not the default)."""
    navix, _ = import_navix_agents()
    if observation == "symbolic":  # baselines/ppo.py: nx.make(env_id); the registry's default is symbolic
        return navix.make(env_id)
    return navix.make(env_id, observation_fn=getattr(navix.observations, observation))


def flatten_observations(env):
    """``baselines/ppo.py``'s ``FlattenObsWrapper``: observations raveled, the space reshaped to match."""
    import jax.numpy as jnp
    import numpy as np

    flatten_obs_fn = lambda x: jnp.ravel(env.observation_fn(x))  # noqa: E731  (theirs, verbatim)
    flatten_obs_shape = (int(np.prod(env.observation_space.shape)),)
    return env.replace(
        observation_fn=flatten_obs_fn,
        observation_space=env.observation_space.replace(shape=flatten_obs_shape),
    )


def navix_setup(env_id: str, observation: str, budget: int) -> NavixSetup:
    """Navix's setup for ``env_id``: ``PPOHparams()`` with ``budget`` frames per seed, ``nx.make``'s env."""
    _, agents = import_navix_agents()
    env = make_navix_env(env_id, observation)
    hparams = agents.PPOHparams(budget=int(budget))
    hidden = agents.MLPEncoder().hidden_size
    return NavixSetup(env_id, observation, int(env.max_steps), float(env.gamma), int(hidden), hparams)


def with_budget(their: NavixSetup, budget: int) -> NavixSetup:
    return dataclasses.replace(their, hparams=their.hparams.replace(budget=int(budget)))


def our_config_fields(their: NavixSetup) -> dict:
    """Our ``PPOConfig`` keywords for Navix's setup ``their``: every shared value taken from it."""
    hp = their.hparams
    return {
        "env_name": f"navix/{their.env_id}?observation={their.observation}&max_steps={their.max_steps}",
        "total_timesteps": int(hp.budget),
        "num_envs": hp.num_envs,
        "num_steps": hp.num_steps,
        "update_epochs": hp.num_epochs,
        "num_minibatches": hp.num_minibatches,
        "learning_rate": float(hp.lr),
        "anneal_lr": bool(hp.anneal_lr),
        "gamma": their.gamma,
        "gae_lambda": float(hp.gae_lambda),
        "clip_eps": float(hp.clip_eps),
        "clip_value_loss": bool(hp.clip_value_loss),
        "ent_coef": float(hp.ent_coef),
        "vf_coef": float(hp.vf_coef),
        "max_grad_norm": float(hp.max_grad_norm),
        "normalize_advantages": bool(hp.normalise_advantage),
        "policy": "mlp",
        "hidden_sizes": (their.hidden_size,) * NAVIX_ENCODER_LAYERS,
        "activation": NAVIX_ACTIVATION,
        "shared_torso": False,  # ActorCritic: separate actor_encoder and critic_encoder
        "torso": "mlp",  # FlattenObsWrapper: the grid is flattened into the MLP, no CNN
        "normalize_observations": False,
        "scale_rewards": False,
        "eval_every": 0,
    }


def our_config(their: NavixSetup):
    """Our ``PPOConfig`` built from Navix's setup (see :func:`our_config_fields`)."""
    import purejaxrl_ppo as pjp

    return pjp.PPOConfig(**our_config_fields(their))


def build_train(program: str, their: NavixSetup):
    """``train(key)`` of ``program`` at Navix's setup ``their``."""
    if program == "ours":
        import purejaxrl_ppo as pjp

        return pjp.make_train(our_config(their))
    _, agents = import_navix_agents()
    env = flatten_observations(make_navix_env(their.env_id, their.observation))
    agent = agents.PPO(hparams=their.hparams, network=agents.ActorCritic(action_dim=len(env.action_set)), env=env)
    return agent.train


def updates_per_seed(batch: int, budget: int, num_seeds: int, max_steps_per_call: int | None, quick: bool) -> int:
    """Whole updates per seed: the budget's, or fewer so one call runs <= ~max_steps_per_call (>= 1)."""
    updates = QUICK_UPDATES if quick else max(1, budget // batch)
    if max_steps_per_call:
        updates = min(updates, max(1, max_steps_per_call // (num_seeds * batch)))
    return updates


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


def measure_point(their: NavixSetup, num_seeds: int, updates: int, rounds: int, nominal_budget: int,
                  ours_compiles_first: bool) -> dict:
    """Compile both, warm up both, then ``rounds`` x A B B A timed calls; one point of the JSON."""
    import jax

    their = with_budget(their, updates * their.batch_size)
    steps = num_seeds * updates * their.batch_size
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    order = PROGRAMS if ours_compiles_first else PROGRAMS[::-1]
    compiled, compile_info = {}, {}
    for program in order:
        compiled[program], compile_info[program] = _compile(jax.jit(jax.vmap(build_train(program, their))), keys)
    warmup = {program: _call(compiled[program], keys) for program in order}
    calls = []
    for r in range(rounds):
        for position, program in enumerate(ROUND_ORDER):
            seconds = _call(compiled[program], keys)
            calls.append({"round": r, "position": position, "program": program, "seconds": seconds,
                          "env_steps_per_second": steps / seconds})
    sps = {p: [c["env_steps_per_second"] for c in calls if c["program"] == p] for p in PROGRAMS}
    pairs = [a / b for a, b in zip(sps["ours"], sps["navix"])]  # A B B A: the k-th of each are adjacent
    medians = {p: _median(v) for p, v in sps.items()}
    return {
        "env": their.env_id, "num_seeds": num_seeds, "updates_per_seed": updates,
        "total_timesteps_per_seed": updates * their.batch_size,
        "nominal_total_timesteps_per_seed": nominal_budget // their.batch_size * their.batch_size,
        "env_steps_per_call": steps,
        "steps_capped": updates * their.batch_size < nominal_budget // their.batch_size * their.batch_size,
        "compile_order": list(order), "compile": compile_info, "warmup_seconds": warmup,
        "calls": calls,
        "env_steps_per_second": sps,
        "median_env_steps_per_second": medians,
        "ratio_of_medians": medians["ours"] / medians["navix"] if medians["navix"] else None,
        "pair_ratios": pairs,
        "median_pair_ratio": _median(pairs),
        "configs": {"navix": their.to_dict(), "ours": our_config(their).to_dict()},
        "differences": list(DIFFERENCES),
        "loadavg_after": list(os.getloadavg()),
    }


def point_line(p: dict) -> str:
    """One printed line per point."""
    med, comp = p["median_env_steps_per_second"], p["compile"]
    capped = " (capped)" if p["steps_capped"] else ""
    return (f"{p['env']} seeds={p['num_seeds']} updates/seed={p['updates_per_seed']}{capped}: "
            f"ours {med['ours'] / 1e3:.1f}k, Navix {med['navix'] / 1e3:.1f}k env-steps/s, "
            f"ours/Navix {p['ratio_of_medians']:.2f} (median pair {p['median_pair_ratio']:.2f}); "
            f"compile ours {comp['ours']['seconds']:.1f} s, Navix {comp['navix']['seconds']:.1f} s "
            f"({p['compile_order'][0]} first)")


# --------------------------------------------------------------------------- learning

#: How each program's per-update return is read, as recorded in the JSON.
RETURN_DEFINITIONS = {
    "ours": ("out.metrics['episode_return'] [seeds, updates]: per update the mean undiscounted return of the "
             "episodes that ended (termination or truncation) at a step of that update's rollout, NaN where none "
             "ended (purejaxrl_ppo/core/iteration.py episode_metrics)"),
    "navix": ("from the logs their train returns, done_mask and returns, [seeds, updates, num_steps, num_envs]: "
              "per update mean(returns[done_mask]) over [num_steps, num_envs], NaN where no episode ended. In "
              "navix 0.7.4 PPO.collect_experience stores done=new_env_state.is_done() (truncation or termination "
              "of the timestep after step t) and info=new_env_state.info; PPO.update logs "
              "logs['done_mask'] = experience.done and logs['returns'] = experience.info['return']; "
              "Environment._step sets info['return'] = previous info['return'] + reward (reset sets 0). So at a "
              "done step 'returns' is the finished episode's undiscounted return, its last (penalised) reward "
              "included; the auto-reset step after it has done False and return 0 and never counts. This is "
              "what navix's Agent.log logs as perf/returns"),
    "final_return": ("purejaxrl_ppo.analysis.stats.final_returns of the [seeds, updates] array, the same for "
                     "both: the last finished episode's return carried forward, averaged over the last "
                     "final_return_window_updates updates (fewer if the run is shorter)"),
}


def navix_update_returns(done_mask, returns):
    """Per update, the mean return of the episodes that ended in it, from Navix's PPO logs.

    done_mask: ``[..., updates, num_steps, num_envs]`` bool, their ``logs["done_mask"]``;
    returns: the same shape, float, their ``logs["returns"]``. Returns ``[..., updates]`` float64:
    ``mean(returns[done_mask])`` per update (``Agent.log``'s ``perf/returns``), NaN where no episode
    ended. See :data:`RETURN_DEFINITIONS` for why a done step's ``returns`` is its episode's return.
    """
    import numpy as np

    done = np.asarray(done_mask, bool)
    ret = np.asarray(returns, np.float64)
    if done.shape != ret.shape or done.ndim < 3:
        raise ValueError(f"done_mask {done.shape} and returns {ret.shape} must share one "
                         "[..., updates, steps, envs] shape")
    count = done.sum((-2, -1))
    total = np.where(done, ret, 0.0).sum((-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _train_once(program: str, their: NavixSetup, keys) -> tuple[Any, dict]:
    """Compile ``jax.jit(jax.vmap(train))`` of ``program`` over ``keys`` and call it once, blocked."""
    import jax

    compiled, compile_info = _compile(jax.jit(jax.vmap(build_train(program, their))), keys)
    start = time.perf_counter()
    out = compiled(keys)
    jax.block_until_ready(out)
    return out, {"compile_seconds": compile_info["seconds"], "train_seconds": time.perf_counter() - start}


def update_returns(program: str, out) -> tuple[Any, Any]:
    """``(per-update returns [seeds, updates], episodes ended per seed [seeds])`` of ``program``'s output."""
    import jax
    import numpy as np

    if program == "ours":
        metrics = jax.device_get(out.metrics)
        return (np.asarray(metrics["episode_return"], np.float64),
                np.asarray(metrics["episodes_ended"], np.float64).sum(-1))
    _, logs = out  # navix: (TrainingState, logs)
    done = np.asarray(jax.device_get(logs["done_mask"]), bool)
    return navix_update_returns(done, jax.device_get(logs["returns"])), done.sum((-3, -2, -1)).astype(np.float64)


def learning_row(their: NavixSetup, program: str, out, timing: dict, num_seeds: int) -> dict:
    """One row of ``"learning"``: final returns per seed, their IQM and mean with 95% CIs, wall seconds."""
    import numpy as np

    from purejaxrl_ppo.analysis import study
    from purejaxrl_ppo.analysis.stats import final_returns

    returns, episodes = update_returns(program, out)
    finals = final_returns(returns)
    finite = finals[np.isfinite(finals)]
    estimates = {}
    if finite.size:
        points, intervals = study.aggregate_estimates({"final": finite[:, None]}, reps=BOOTSTRAP_REPS)
        estimates = {"final_return_iqm": points["final"]["iqm"], "final_return_iqm_ci95": intervals["final"]["iqm"],
                     "final_return_mean": points["final"]["mean"],
                     "final_return_mean_ci95": intervals["final"]["mean"]}
    updates = int(returns.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN updates, before any seed ended an episode
        curve = np.nanmedian(returns, axis=0)
    return {
        "env": their.env_id, "program": program, "seeds": num_seeds, "updates_per_seed": updates,
        "env_steps_per_seed": updates * their.batch_size,
        "final_return_per_seed": [float(x) for x in finals],
        "final_return_seeds_with_episodes": int(finite.size),
        "final_return_iqm": None, "final_return_iqm_ci95": None,
        "final_return_mean": None, "final_return_mean_ci95": None, **estimates,
        "episodes_ended_per_seed": [int(x) for x in episodes],
        "return_curve_median": [None if np.isnan(x) else float(x) for x in curve],
        "return_definition": RETURN_DEFINITIONS[program],
        **timing,
        "env_steps_per_second": num_seeds * updates * their.batch_size / timing["train_seconds"],
    }


def learning_point(their: NavixSetup, num_seeds: int, ours_first: bool) -> Iterator[dict]:
    """Both programs trained on the same keys at ``their`` budget; yields one row each, in running order."""
    import jax

    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    if our_config(their).num_updates != their.hparams.budget // their.batch_size:
        raise AssertionError("ours and Navix's PPO would run a different number of updates")
    for position, program in enumerate(PROGRAMS if ours_first else PROGRAMS[::-1]):
        out, timing = _train_once(program, their, keys)
        row = {**learning_row(their, program, out, timing, num_seeds), "run_position": position,
               "loadavg_after": list(os.getloadavg())}
        del out
        yield row


def learning_line(row: dict) -> str:
    """One printed line per env and program of the learning comparison."""
    if row["final_return_iqm"] is None:
        score = "no seed finished an episode"
    else:
        low, high = row["final_return_iqm_ci95"]
        score = f"final return IQM {row['final_return_iqm']:.3f} [{low:.3f}, {high:.3f}]"
    name = "ours" if row["program"] == "ours" else "Navix"
    return (f"learning {row['env']} {name}: {score} over {row['seeds']} seeds x {row['env_steps_per_seed']:,} steps; "
            f"train {row['train_seconds']:.1f} s ({row['env_steps_per_second'] / 1e3:.1f}k env-steps/s), "
            f"compile {row['compile_seconds']:.1f} s")


# --------------------------------------------------------------------------- report


def _versions() -> dict:
    out = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "navix", "distrax", "rlax", "chex", "numpy"):
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
    parser.add_argument("--navix-dir", default=os.environ.get("NAVIX_DIR"),
                        help="navix repository (bare git dir or checkout), read for provenance only "
                             "(default: $NAVIX_DIR)")
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), help="navix ids (nx.registry())")
    parser.add_argument("--observation", default="symbolic", choices=list(SCRIPT_OBSERVATIONS),
                        help="navix observation function, flattened, for both programs "
                             "(symbolic: baselines/ppo.py; symbolic_first_person: examples/ppo.py)")
    parser.add_argument("--budget", type=int, default=CPU_BUDGET,
                        help=f"frames per seed (PPOHparams.budget; theirs is {NAVIX_BUDGET:,})")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="seed counts (default: 1 16 64)")
    parser.add_argument("--rounds", type=int, default=None, help="A B B A rounds, 4 timed calls each (default: 2)")
    parser.add_argument("--max-steps-per-call", type=int, default=None,
                        help="fewer updates per seed so one call runs at most ~N env steps over all seeds "
                             "(at least one update); steady-state throughput")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {QUICK_UPDATES} updates per seed, 1 seed and 1 round unless given")
    parser.add_argument("--learning", action="store_true",
                        help="also train both programs for --budget env steps per seed on --learning-seeds seeds "
                             "and record final returns (JSON key 'learning')")
    parser.add_argument("--learning-seeds", type=int, default=LEARNING_SEEDS,
                        help=f"seeds per program in the learning comparison (default: {LEARNING_SEEDS})")
    parser.add_argument("--no-throughput", action="store_true",
                        help="with --learning: skip the throughput points, run the learning comparison alone")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [1] if args.quick else [1, 16, 64]
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if min(args.seeds) < 1 or args.rounds < 1 or args.budget < 1:
        parser.error("--seeds, --rounds and --budget must be positive")
    if args.max_steps_per_call is not None and args.max_steps_per_call < 1:
        parser.error(f"--max-steps-per-call must be positive, got {args.max_steps_per_call}")
    if args.learning_seeds < 1:
        parser.error(f"--learning-seeds must be positive, got {args.learning_seeds}")
    if args.no_throughput and not args.learning:
        parser.error("--no-throughput leaves nothing to run without --learning")
    return args


def run(argv: list[str], log=print) -> dict:
    """Run the benchmark for CLI arguments ``argv``; writes ``--out`` and returns the results dict."""
    args = parse_args(argv)
    import purejaxrl_ppo  # noqa: F401  (first, before navix and any jax computation: XLA:CPU flag, threefry)
    from purejaxrl_ppo.analysis.stats import FINAL_RETURN_WINDOW
    from purejaxrl_ppo.runs.provenance import machine_description

    navix, _ = import_navix_agents()
    unknown = sorted(set(args.envs) - set(navix.registry()))
    if unknown:
        raise SystemExit(f"unknown navix ids {unknown}; valid: {', '.join(sorted(navix.registry()))}")
    source = navix_source(args.navix_dir, importlib.metadata.version("navix"), Path(navix.__file__).resolve().parent)
    if source["repository"] is None:
        log("note: no --navix-dir / $NAVIX_DIR: the JSON records no navix commit")
    results: dict[str, Any] = {
        "benchmark": "ours vs Navix's PPO (navix.agents.PPO), same process, alternated A B B A",
        "command": shlex.join([sys.executable, str(Path(__file__).resolve()), *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_description(), "available_cores": len(os.sched_getaffinity(0)),
                    "xla_flags": os.environ.get("XLA_FLAGS", ""), "loadavg_at_start": list(os.getloadavg())},
        "versions": {**_versions(), "purejaxrl_ppo": purejaxrl_ppo.__version__,
                     "navix_repository_head": (source["repository"] or {}).get("head_commit"),
                     "navix_repository_tag_commit": (source["repository"] or {}).get("tag_commit")},
        "navix": source,
        "settings": {"envs": args.envs, "observation": args.observation,
                     "observation_source": SCRIPT_OBSERVATIONS[args.observation], "budget": args.budget,
                     "navix_default_budget": NAVIX_BUDGET, "seeds": args.seeds, "rounds": args.rounds,
                     "round_order": list(ROUND_ORDER), "max_steps_per_call": args.max_steps_per_call,
                     "quick": args.quick, "throughput": not args.no_throughput, "learning": args.learning},
        "configs": {},
        "differences": list(DIFFERENCES),
        "points": [],
        "notes": [
            ("env-steps/s = seeds x updates x num_envs x num_steps / wall seconds of one call of the compiled "
             "executable (outputs included, blocked until ready)"),
            ("compile = jitted.lower(keys).compile() wall seconds; same process, so the second compile may profit "
             "from caches warmed by the first (compile_order alternates between points)"),
            ("steps_capped points (--max-steps-per-call) run fewer updates than the budget: steady-state "
             "throughput, not a full training run"),
        ],
    }
    if args.learning:
        results["learning"] = {
            "seeds": args.learning_seeds, "budget": args.budget,
            "keys": f"jax.random.split(jax.random.PRNGKey(0), {args.learning_seeds}), the same for both programs",
            "return_definitions": RETURN_DEFINITIONS,
            "final_return_window_updates": FINAL_RETURN_WINDOW,
            "estimates": (f"IQM and mean over the seeds with a finite final return, 95% stratified-bootstrap CIs "
                          f"(purejaxrl_ppo.analysis.study.aggregate_estimates, {BOOTSTRAP_REPS} resamples, seed 0)"),
            "seconds": ("compile_seconds: jitted.lower(keys).compile(); train_seconds: one call of the compiled "
                        "jax.jit(jax.vmap(train)) blocked until its outputs are ready (deriving returns excluded)"),
            "rows": [],
        }
    index = 0
    for env_id in args.envs:
        their = navix_setup(env_id, args.observation, args.budget)
        results["configs"][env_id] = {"navix": their.to_dict(), "ours": our_config(their).to_dict()}
        if args.no_throughput:
            continue
        for seeds in args.seeds:
            updates = updates_per_seed(their.batch_size, args.budget, seeds, args.max_steps_per_call, args.quick)
            point = measure_point(their, seeds, updates, args.rounds, args.budget, ours_compiles_first=index % 2 == 0)
            index += 1
            results["points"].append(point)
            results["machine"]["loadavg_at_end"] = list(os.getloadavg())
            save(results, args.out)
            log(point_line(point))
    for position, env_id in enumerate(args.envs if args.learning else ()):
        their = navix_setup(env_id, args.observation, args.budget)
        if args.budget < their.batch_size:
            raise SystemExit(f"--budget {args.budget} is under one update ({their.batch_size} env steps) per seed")
        for row in learning_point(their, args.learning_seeds, ours_first=position % 2 == 0):
            results["learning"]["rows"].append(row)
            results["machine"]["loadavg_at_end"] = list(os.getloadavg())
            save(results, args.out)
            log(learning_line(row))
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
