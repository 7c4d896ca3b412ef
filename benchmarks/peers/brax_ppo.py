"""Throughput peer: our PPO vs Brax's own PPO trainer (``brax.training.agents.ppo.train``) on a Brax task.

    PYTHONPATH=. python benchmarks/peers/brax_ppo.py                   # 1, 4 and 16 seeds, 1 round (about an hour)
    PYTHONPATH=. python benchmarks/peers/brax_ppo.py --seeds 1 4 --rounds 2
    PYTHONPATH=. python benchmarks/peers/brax_ppo.py --quick           # smoke test, tiny budgets (minutes)

Most of the wall time is Brax's: every ``train()`` call compiles its training epoch and its
evaluator afresh (about 15 s + 2 × 10 s on an idle 2-core CPU), so N seeds cost N of those.

``run(argv) -> dict`` does the same from Python (``benchmarks/throughput.py`` can call it).

What runs. Both trainers train on ``brax.envs.get_environment(env, backend=...)`` with the
same episode length and action repeat. Ours: ``jax.jit(jax.vmap(pjp.make_train(config)))``
over N seed keys (one compiled program for all N seeds). Brax: ``ppo.train`` once per seed,
one after the other in this process (Brax's trainer has no seed axis: it is a Python loop over
pmapped epochs), seeds ``seed .. seed+N-1``.

Matched settings (``SHARED`` holds the values; ``our_config`` / ``brax_kwargs`` map them):
env, backend, episode length, action repeat; ``num_envs``; unroll length = our ``num_steps``;
minibatches; epochs (Brax ``num_updates_per_batch``); Brax ``batch_size = num_envs /
num_minibatches`` so that each Brax training step collects ``batch_size * num_minibatches /
num_envs = 1`` unroll of ``unroll_length`` steps in ``num_envs`` envs, i.e. exactly our rollout
of ``num_envs * num_steps`` transitions per update, split into the same minibatches; total env
steps (a multiple of 2 rollouts, so both run the same number of updates); learning rate
(constant: our ``anneal_lr`` off, Brax has no schedule by default); γ; GAE λ; clip ε; entropy
cost; value coefficient (both ½·c·MSE); unclipped value loss (Brax ``clipping_epsilon_value``
None ↔ our ``clip_value_loss=False``); per-minibatch advantage normalisation; gradient-norm
clip; observation normalisation (running mean and variance of the raw observations); rewards
unscaled (Brax ``reward_scaling=1`` ↔ our ``scale_rewards=False``). Networks:
Brax's ``network_factory`` gets our widths and activation (default two hidden layers of 64,
tanh, for both policy and value instead of Brax's 4×32 / 5×256 swish), so both trainers do
the same matmul work per layer. Distribution: Brax's default tanh-squashed Gaussian ↔ our
``action_squash="tanh"`` (both with a one-sample entropy estimate). Hyperparameter values are
Brax's published inverted_pendulum settings (γ 0.97, lr 3e-4, entropy 1e-2, unroll 5, 4
epochs) and its defaults (λ 0.95, ε 0.3, value coefficient 0.5), with our gradient clip 0.5.

What cannot be matched (the algorithms differ slightly, the work per env step barely):
Brax's policy head outputs a location and a softplus scale per action dimension (ours: a mean
per dimension and a state-independent log-std); initialisation (Brax lecun-uniform, ours
orthogonal); Brax computes no values during the rollout but recomputes values and GAE with
the current parameters inside every minibatch loss (plus one bootstrap value per unroll),
where ours computes values in the rollout and GAE once per update; Brax zeroes the advantage
and value error of truncated transitions (``bootstrap_on_timeout=False``), ours bootstraps
from the true last observation; Brax folds the rollout into the observation statistics before
the update, ours after it, and ours clips normalised observations to ±10 (Brax: no clip);
Brax's auto-reset replays the episode's first state, ours draws a fresh one.

How it is timed. Rounds alternate A B B A (A = ours, B = Brax) for each seed count; medians and
the median of the per-pair ratios (A1/B1, A2/B2) are reported.

* Ours: the program is compiled once per seed count before the rounds (``lower().compile()``
  time = compile seconds, then the first call); every A is one further call of the compiled
  program (steady state): env-steps/s = N × steps per seed / wall seconds.
* Brax: ``num_evals=3``, the smallest value that gives two training epochs (Brax runs
  ``max(num_evals - 1, 1)`` epochs, each ``ceil(steps / epochs)`` env steps): the first epoch
  includes its compilation, the second is steady state. Steady env-steps/s is Brax's own
  ``training/sps`` of the second epoch (the epoch timed alone, evaluation excluded), read in
  ``progress_fn``; the compile estimate is epoch 1 minus epoch 2 seconds (equal step counts).
  Brax evaluates at step 0 and after each epoch (``eval/walltime``, reported, not counted).
  Each Brax call compiles again (a new trainer closure), so N seeds compile N times; that
  counts in the end-to-end figure below, not in the steady one. A compile counter (jax's
  monitoring events) checks that epoch 2 and the evaluation after it compiled nothing.
* Per CPU-second (secondary; on a shared machine less sensitive to other processes than wall
  time): ours N × steps / process CPU seconds of the steady call; Brax epoch-2 steps / process
  CPU seconds between its ``progress_fn`` report after epoch 1's evaluation and its
  ``policy_params_fn`` call right after epoch 2 (nothing but epoch 2 and two parameter
  read-backs run in between). Both trainers run essentially single-threaded here (CPU ≈ wall).
* End-to-end (secondary): ours N × steps / (compile + first call); Brax Σ steps / Σ seconds of
  the whole ``train()`` calls (setup, compile, both epochs) less their evaluation seconds
  (``eval/walltime``: Brax's evaluator compiles its episode-long unroll and, here, compiles it
  again after the first epoch, ~20 s each on this CPU; the raw call seconds are recorded too).

Returns, so that both are seen to learn: the deterministic evaluation return of the final
policy over ``--eval-episodes`` episodes for both (ours: :func:`purejaxrl_ppo.evaluate` after
the first call, outside any timing; Brax: its evaluator's ``eval/episode_reward`` after the
last epoch, ``deterministic_eval=True``), and ours' training ``episode_return`` (mean of the
last 10 updates in which an episode ended).

Brax 0.14.2 calls ``jax.device_put_replicated``, which jax 0.10 removed;
:func:`install_device_put_replicated` puts back a stand-in (one copy of each leaf per
device, stacked on a leading axis sharded over those devices, on a mesh axis named like
Brax's pmap axis so that epoch 2 does not compile again) before the first Brax call.

Import order: :mod:`purejaxrl_ppo` is imported before jax and Brax, so the XLA:CPU
deadlock workaround applies to both trainers in this process.
"""

from __future__ import annotations  # noqa: I001  (purejaxrl_ppo must be imported before jax)

import argparse
import datetime
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import purejaxrl_ppo as pjp  # first: applies the XLA:CPU workaround before jax starts

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "purejaxrl" / "brax_ppo.json"
QUICK_OUT = DEFAULT_OUT.with_name("brax_ppo_quick.json")

#: The settings both trainers share (CLI flags may override the task and rollout shape).
SHARED = {
    "learning_rate": 3e-4,
    "gamma": 0.97,
    "gae_lambda": 0.95,
    "clip_eps": 0.3,
    "ent_coef": 1e-2,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "normalize_observations": True,
    "normalize_advantages": True,
    "hidden_sizes": (64, 64),
    "activation": "tanh",
}
#: Brax splits training into max(num_evals - 1, 1) epochs: 3 gives two (compile + steady).
BRAX_NUM_EVALS = 3
BRAX_EPOCHS = BRAX_NUM_EVALS - 1


# --------------------------------------------------------------------------- settings


def env_name(args: argparse.Namespace) -> str:
    return (f"brax/{args.env}?backend={args.backend}&episode_length={args.episode_length}"
            f"&action_repeat={args.action_repeat}")


def rollout_size(args: argparse.Namespace) -> int:
    return args.num_envs * args.unroll_length


def round_budget(steps: int, args: argparse.Namespace) -> int:
    """``steps`` rounded down to whole Brax epochs of whole rollouts (at least one rollout per epoch)."""
    unit = BRAX_EPOCHS * rollout_size(args)
    return max(unit, steps // unit * unit)


def our_config(args: argparse.Namespace, total_timesteps: int) -> pjp.PPOConfig:
    return pjp.PPOConfig(
        env_name=env_name(args), total_timesteps=total_timesteps, num_envs=args.num_envs,
        num_steps=args.unroll_length, num_minibatches=args.num_minibatches, update_epochs=args.update_epochs,
        learning_rate=SHARED["learning_rate"], anneal_lr=False, gamma=SHARED["gamma"],
        gae_lambda=SHARED["gae_lambda"], clip_eps=SHARED["clip_eps"], clip_value_loss=False,
        ent_coef=SHARED["ent_coef"], vf_coef=SHARED["vf_coef"], max_grad_norm=SHARED["max_grad_norm"],
        normalize_observations=SHARED["normalize_observations"],
        normalize_advantages=SHARED["normalize_advantages"], scale_rewards=False,
        hidden_sizes=SHARED["hidden_sizes"], activation=SHARED["activation"], action_squash="tanh",
        eval_every=0,
    )


def brax_kwargs(args: argparse.Namespace, total_timesteps: int, seed: int) -> dict:
    """``brax.training.agents.ppo.train`` arguments (all but environment, network and callback)."""
    if args.num_envs % args.num_minibatches:
        raise ValueError(f"num_envs {args.num_envs} must be divisible by num_minibatches {args.num_minibatches} "
                         "(Brax's batch_size counts whole unrolls)")
    return {
        "num_timesteps": total_timesteps, "episode_length": args.episode_length,
        "action_repeat": args.action_repeat, "num_envs": args.num_envs, "unroll_length": args.unroll_length,
        "batch_size": args.num_envs // args.num_minibatches, "num_minibatches": args.num_minibatches,
        "num_updates_per_batch": args.update_epochs, "learning_rate": SHARED["learning_rate"],
        "discounting": SHARED["gamma"], "gae_lambda": SHARED["gae_lambda"], "clipping_epsilon": SHARED["clip_eps"],
        "clipping_epsilon_value": None, "entropy_cost": SHARED["ent_coef"], "vf_loss_coefficient": SHARED["vf_coef"],
        "max_grad_norm": SHARED["max_grad_norm"], "normalize_observations": SHARED["normalize_observations"],
        "normalize_advantage": SHARED["normalize_advantages"], "reward_scaling": 1.0,
        "num_evals": BRAX_NUM_EVALS, "num_eval_envs": args.eval_episodes, "deterministic_eval": True, "seed": seed,
    }


def brax_network_factory():
    from brax.training.agents.ppo import networks as brax_networks

    return functools.partial(
        brax_networks.make_ppo_networks, policy_hidden_layer_sizes=SHARED["hidden_sizes"],
        value_hidden_layer_sizes=SHARED["hidden_sizes"], activation=getattr(jax.nn, SHARED["activation"]),
    )


def install_device_put_replicated() -> None:
    """Put back ``jax.device_put_replicated`` (removed in jax 0.10), which Brax's trainer calls.

    Brax passes the result to its pmapped training epoch and reads it back with
    ``x.addressable_shards[0].data.squeeze(0)``: each leaf needs a leading axis of
    ``len(devices)`` identical copies, one per device. The stand-in stacks the copies and
    shards that axis over ``devices`` on a mesh whose axis carries Brax's pmap axis name
    (``"i"``). The name matters: jax 0.10's ``pmap`` returns arrays sharded over a mesh axis
    named after its ``axis_name`` and keys its compile cache on the input shardings, so a
    training state placed any other way (a plain ``jnp.stack`` on one device, or another axis
    name) makes Brax's second epoch compile the whole training program again (measured here:
    epoch 2 of a tiny run took the compile time, ~25 s, instead of ~0.1 s).
    """
    if "device_put_replicated" in vars(jax):
        return
    from brax.training.agents.ppo import train as brax_ppo

    axis_name = getattr(brax_ppo, "_PMAP_AXIS_NAME", "i")

    def device_put_replicated(tree, devices):
        devices = list(devices)
        mesh = jax.sharding.Mesh(np.array(devices), (axis_name,))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis_name))

        def replicate(leaf):
            leaf = jnp.asarray(leaf)
            return jax.device_put(jnp.broadcast_to(leaf, (len(devices), *leaf.shape)), sharding)

        return jax.tree_util.tree_map(replicate, tree)

    jax.device_put_replicated = device_put_replicated


class CompileCounter:
    """Counts XLA backend compilations (jax's monitoring events) while a Brax call runs."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        # jax's private monitoring module, hence the guard: the count is a diagnostic only.
        self.count, self.seconds = 0, 0.0
        try:
            from jax._src import monitoring

            monitoring.register_event_duration_secs_listener(self._listen)
        except (ImportError, AttributeError):  # pragma: no cover - depends on jax internals
            self.count = self.seconds = None

    def _listen(self, event: str, duration: float, **_: object) -> None:
        if event == self.EVENT and self.count is not None:
            self.count += 1
            self.seconds += duration

    def since(self, mark: tuple) -> dict:
        """Compilations (count, seconds) since ``mark`` (an earlier :attr:`mark`)."""
        if self.count is None:
            return {"compiles": None, "compile_seconds": None}
        return {"compiles": self.count - mark[0], "compile_seconds": self.seconds - mark[1]}

    @property
    def mark(self) -> tuple:
        return (self.count, self.seconds)


_COUNTER: CompileCounter | None = None


def compile_counter() -> CompileCounter:
    global _COUNTER
    if _COUNTER is None:
        _COUNTER = CompileCounter()
    return _COUNTER


# --------------------------------------------------------------------------- ours


def _last_finished(returns: np.ndarray, count: int = 10) -> float:
    """Mean of the last ``count`` non-NaN per-update episode returns (NaN when no episode ended)."""
    finished = returns[~np.isnan(returns)]
    return float(finished[-count:].mean()) if finished.size else float("nan")


class Ours:
    """Our program for one seed count: compiled once (timed), then called for each A measurement."""

    def __init__(self, args: argparse.Namespace, num_seeds: int, steps_per_seed: int):
        self.config = our_config(args, steps_per_seed)
        self.num_seeds = num_seeds
        self.keys = jax.random.split(jax.random.PRNGKey(args.seed), num_seeds)
        self.env_steps = num_seeds * self.config.num_updates * self.config.batch_size
        train = jax.jit(jax.vmap(pjp.make_train(self.config)))
        start, cpu = time.perf_counter(), time.process_time()
        self.compiled = train.lower(self.keys).compile()
        self.compile_seconds = time.perf_counter() - start
        self.compile_cpu_seconds = time.process_time() - cpu
        out = jax.block_until_ready(self.compiled(self.keys))
        self.first_call_seconds = time.perf_counter() - start  # compile + first run
        self.first_call_cpu_seconds = time.process_time() - cpu
        self.returns = self._returns(out, args.eval_episodes, args.seed)

    def _returns(self, out, episodes: int, seed: int) -> dict:
        config = self.config
        evaluate = jax.jit(jax.vmap(lambda p, s, k: pjp.evaluate(config, p, k, episodes, s)))
        eval_keys = jax.random.split(jax.random.PRNGKey(seed + 1), self.num_seeds)
        evals = np.asarray(evaluate(out.params, out.state.normalizer.obs, eval_keys))  # [seeds, episodes]
        train_returns = np.asarray(out.metrics["episode_return"]).reshape(self.num_seeds, -1)
        return {
            "eval_return_per_seed": evals.mean(axis=1).tolist(),
            "eval_return_median": float(np.median(evals.mean(axis=1))),
            "train_episode_return_per_seed": [_last_finished(r) for r in train_returns],
        }

    def measure(self) -> dict:
        start, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(self.compiled(self.keys))
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        return {"seconds": seconds, "cpu_seconds": cpu_seconds, "env_steps": self.env_steps,
                "env_steps_per_second": self.env_steps / seconds,
                "env_steps_per_cpu_second": self.env_steps / cpu_seconds}

    def summary(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "num_seeds": self.num_seeds,
            "env_steps": self.env_steps,
            "compile_seconds": self.compile_seconds,
            "compile_cpu_seconds": self.compile_cpu_seconds,
            "first_call_seconds": self.first_call_seconds,
            "first_call_cpu_seconds": self.first_call_cpu_seconds,
            "end_to_end_env_steps_per_second": self.env_steps / self.first_call_seconds,
            **self.returns,
        }


# --------------------------------------------------------------------------- Brax


def brax_run(args: argparse.Namespace, steps: int, seed: int) -> dict:
    """One ``ppo.train`` call; its epochs' timings (Brax's own), evaluations and the call's wall time."""
    from brax import envs
    from brax.training.agents.ppo import train as brax_ppo

    install_device_put_replicated()
    kwargs = brax_kwargs(args, steps, seed)
    environment = envs.get_environment(args.env, backend=args.backend)
    reports, events = [], []
    counter = compile_counter()
    mark = counter.mark
    start, cpu = time.perf_counter(), time.process_time()

    def event(kind, step):
        events.append({"event": kind, "step": int(step), "wall": time.perf_counter() - start,
                       "cpu": time.process_time() - cpu})

    def progress(step, metrics):
        event("progress", step)
        reports.append({"step": int(step), "at_seconds": time.perf_counter() - start, **counter.since(mark),
                        **{k: float(v) for k, v in metrics.items()
                           if k in ("eval/episode_reward", "eval/walltime", "training/sps", "training/walltime")}})

    def params_fn(step, make_policy, params):  # called right after each epoch, before its evaluation
        event("params", step)

    brax_ppo.train(environment=environment, network_factory=brax_network_factory(), progress_fn=progress,
                   policy_params_fn=params_fn, **kwargs)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    epochs = [r for r in reports if r["step"] > 0]
    if len(epochs) != BRAX_EPOCHS:
        raise RuntimeError(f"expected {BRAX_EPOCHS} Brax epochs, got progress reports {reports}")
    first = epochs[0]["training/walltime"]
    steady = epochs[1]["training/walltime"] - first
    epoch_steps = epochs[1]["step"] - epochs[0]["step"]
    # Epoch 2 bracketed by our own clocks: from the report of epoch 1 (after its evaluation) to the
    # policy_params_fn call that follows epoch 2 (before its evaluation): wall and process CPU.
    begin = next(e for e in events if e["event"] == "progress" and e["step"] == epochs[0]["step"])
    end = next(e for e in events if e["event"] == "params" and e["step"] == epochs[1]["step"])
    steady_cpu, steady_wall = end["cpu"] - begin["cpu"], end["wall"] - begin["wall"]
    recompiles = None if epochs[1]["compiles"] is None else epochs[1]["compiles"] - epochs[0]["compiles"]
    if recompiles:
        print(f"warning: Brax compiled {recompiles} program(s) during its second epoch and evaluation; "
              "its steady-state figure then includes compilation", file=sys.stderr)
    return {
        "seed": seed,
        "env_steps": epochs[-1]["step"],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "first_epoch_seconds": first,
        "steady_epoch_seconds": steady,
        "steady_epoch_env_steps": epoch_steps,
        "steady_env_steps_per_second": epochs[1]["training/sps"],
        "steady_epoch_bracket_seconds": steady_wall,
        "steady_epoch_cpu_seconds": steady_cpu,
        "steady_env_steps_per_cpu_second": epoch_steps / steady_cpu,
        "compile_seconds_estimate": first - steady,
        "compiles_total": counter.since(mark)["compiles"],
        "compiles_in_epoch_2_and_its_eval": recompiles,
        "eval_seconds": reports[-1]["eval/walltime"],
        "eval_return": epochs[-1]["eval/episode_reward"],
        "progress": reports,
        "events": events,
    }


def brax_measure(args: argparse.Namespace, num_seeds: int, steps: int) -> dict:
    """N Brax runs one after the other (seeds ``seed .. seed+N-1``): summed steps over summed seconds."""
    runs = [brax_run(args, steps, args.seed + i) for i in range(num_seeds)]
    steady_steps = sum(r["steady_epoch_env_steps"] for r in runs)
    steady_seconds = sum(r["steady_epoch_seconds"] for r in runs)
    env_steps, seconds = sum(r["env_steps"] for r in runs), sum(r["seconds"] for r in runs)
    eval_seconds = sum(r["eval_seconds"] for r in runs)
    return {
        "env_steps": env_steps,
        "seconds": seconds,
        "cpu_seconds": sum(r["cpu_seconds"] for r in runs),
        "env_steps_per_second": steady_steps / steady_seconds,
        "env_steps_per_cpu_second": steady_steps / sum(r["steady_epoch_cpu_seconds"] for r in runs),
        "end_to_end_env_steps_per_second": env_steps / (seconds - eval_seconds),
        "compile_seconds_estimate": sum(r["compile_seconds_estimate"] for r in runs),
        "eval_seconds": eval_seconds,
        "eval_return_per_seed": [r["eval_return"] for r in runs],
        "runs": runs,
    }


# --------------------------------------------------------------------------- comparison


def compare(args: argparse.Namespace, num_seeds: int, steps: int, log=print) -> dict:
    """Rounds of A B B A at one seed count; medians and the median per-pair ratio ours/Brax."""
    log(f"[{num_seeds} seed(s), {steps} env steps each] compiling ours ...")
    ours = Ours(args, num_seeds, steps)
    log(f"  ours compile {ours.compile_seconds:.1f} s, first call {ours.first_call_seconds:.1f} s, "
        f"eval return median {ours.returns['eval_return_median']:.1f}")
    a_runs, b_runs, ratios, cpu_ratios = [], [], [], []
    for round_index in range(args.rounds):
        pending = None
        for which in "ABBA":
            if which == "A":
                m = ours.measure()
                a_runs.append(m)
                log(f"  round {round_index + 1} A ours: {m['env_steps_per_second']:,.0f} env-steps/s "
                    f"({m['seconds']:.1f} s)")
            else:
                m = brax_measure(args, num_seeds, steps)
                b_runs.append(m)
                log(f"  round {round_index + 1} B brax: {m['env_steps_per_second']:,.0f} env-steps/s steady, "
                    f"{m['seconds']:.1f} s for {num_seeds} call(s), eval returns {m['eval_return_per_seed']}")
            if pending is None:
                pending = (which, m)
            else:  # a pair: (A, B) then (B, A)
                a, b = (pending[1], m) if pending[0] == "A" else (m, pending[1])
                ratios.append(a["env_steps_per_second"] / b["env_steps_per_second"])
                cpu_ratios.append(a["env_steps_per_cpu_second"] / b["env_steps_per_cpu_second"])
                pending = None
    ours_sps = statistics.median(m["env_steps_per_second"] for m in a_runs)
    brax_sps = statistics.median(m["env_steps_per_second"] for m in b_runs)
    brax_e2e = statistics.median(m["end_to_end_env_steps_per_second"] for m in b_runs)
    brax_returns = [r for m in b_runs[-1:] for r in m["eval_return_per_seed"]]
    ours_summary = ours.summary()
    return {
        "num_seeds": num_seeds,
        "env_steps_per_seed": steps,
        "ours": {**ours_summary, "steady": a_runs, "env_steps_per_second_median": ours_sps},
        "brax": {"kwargs": brax_kwargs(args, steps, args.seed), "steady": b_runs,
                 "env_steps_per_second_median": brax_sps, "end_to_end_env_steps_per_second_median": brax_e2e,
                 "compile_seconds_estimate_median": statistics.median(
                     m["compile_seconds_estimate"] for m in b_runs),
                 "seconds_median": statistics.median(m["seconds"] for m in b_runs),
                 "eval_return_median": float(np.median(brax_returns))},
        "pair_ratios": ratios,
        "ratio_median": statistics.median(ratios),
        "ratio_of_medians": ours_sps / brax_sps,
        "cpu_pair_ratios": cpu_ratios,
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "end_to_end_ratio": ours_summary["end_to_end_env_steps_per_second"] / brax_e2e,
        "target": 1.1,
        "meets_target": statistics.median(ratios) >= 1.1,
    }


def source_state() -> dict:
    """The checkout measured: commit and the uncommitted changes to the package (they change our timings)."""
    import subprocess

    def git(*cmd: str) -> str:
        try:
            done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
            return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted_package_files": git("status", "--porcelain", "--", "purejaxrl_ppo").splitlines()}


def machine_info(argv: list[str]) -> dict:
    import brax
    from purejaxrl_ppo.runs.provenance import code_version
    import flax
    import jaxlib
    import optax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "versions": {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "brax": brax.__version__,
                     "flax": flax.__version__, "optax": optax.__version__, "numpy": np.__version__,
                     "purejaxrl_ppo": pjp.__version__},
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "benchmarks/peers/brax_ppo.py", *argv]),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "source": source_state(),
        "code": code_version(),
    }


def markdown_table(results: dict) -> str:
    rows = [
        ("| seeds | env steps / seed | ours env-steps/s | Brax env-steps/s | ours/Brax (median pair) "
         "| ours/Brax per CPU-second | ours compile / first call s | Brax compile est. s (all runs) "
         "| end-to-end ours/Brax "
         "| eval return ours | eval return Brax |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results["comparisons"]:
        ours, brax = c["ours"], c["brax"]
        rows.append(
            f"| {c['num_seeds']} | {c['env_steps_per_seed']:,} | {ours['env_steps_per_second_median']:,.0f} "
            f"| {brax['env_steps_per_second_median']:,.0f} | {c['ratio_median']:.2f}× | {c['cpu_ratio_median']:.2f}× "
            f"| {ours['compile_seconds']:.0f} / {ours['first_call_seconds']:.0f} "
            f"| {brax['compile_seconds_estimate_median']:.0f} | {c['end_to_end_ratio']:.2f}× "
            f"| {ours['eval_return_median']:.0f} | {brax['eval_return_median']:.0f} |"
        )
    return "\n".join(rows)


DEFAULTS = {"seeds": [1, 4, 16], "total_timesteps": 200_000, "multi_seed_timesteps": None, "rounds": 1,
            "eval_episodes": 8}
QUICK_DEFAULTS = {"seeds": [1, 2], "total_timesteps": 640, "multi_seed_timesteps": 640, "rounds": 1,
                  "eval_episodes": 2}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="inverted_pendulum")
    parser.add_argument("--backend", default="generalized")
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--action-repeat", type=int, default=1)
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--unroll-length", type=int, default=5, help="Brax unroll_length = our num_steps")
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seed counts: ours jit(vmap) over N seeds vs N Brax runs in sequence (default 1 4 16)")
    parser.add_argument("--total-timesteps", type=int, default=None,
                        help="env steps per seed at 1 seed (default 200000)")
    parser.add_argument("--multi-seed-timesteps", type=int, default=None,
                        help="env steps per seed at N > 1 seeds (default: --total-timesteps, capped so that "
                             "one call of ours runs at most --max-steps-per-call)")
    parser.add_argument("--max-steps-per-call", type=int, default=1_600_000,
                        help="cap on N x steps per seed for the default --multi-seed-timesteps")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of A B B A, A ours, B Brax (default 1)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="evaluation episodes (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: defaults become 1 and 2 seeds, 640 env steps each, 1 round, 2 eval episodes")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"JSON results (default {DEFAULT_OUT.relative_to(ROOT)}; with --quick "
                             f"{QUICK_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    # --quick changes the defaults only: flags given explicitly win.
    defaults = QUICK_DEFAULTS if args.quick else DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    return args


def steps_per_seed(args: argparse.Namespace, num_seeds: int) -> int:
    if num_seeds == 1:
        return round_budget(args.total_timesteps, args)
    if args.multi_seed_timesteps is not None:
        return round_budget(args.multi_seed_timesteps, args)
    return round_budget(min(args.total_timesteps, args.max_steps_per_call // num_seeds), args)


def run(argv: list[str] | None = None, log=print) -> dict:
    """Run the comparison for ``argv`` (command-line flags); writes ``--out`` and returns the results.

    ``log``: where progress lines go (``print``; pass ``lambda *a: None`` for silence).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    results = {
        "benchmark": "purejaxrl_ppo PPO vs brax.training.agents.ppo.train (throughput peer)",
        "machine": machine_info(argv),
        "env_name": env_name(args),
        "shared_settings": {**SHARED, "hidden_sizes": list(SHARED["hidden_sizes"]),
                            "num_envs": args.num_envs, "unroll_length": args.unroll_length,
                            "num_minibatches": args.num_minibatches, "update_epochs": args.update_epochs,
                            "brax_batch_size": args.num_envs // args.num_minibatches, "reward_scaling": 1.0,
                            "action_distribution": "tanh-squashed Gaussian"},
        "method": ("A B B A rounds; ours: further calls of the program compiled once per seed count; Brax: "
                   f"num_evals={BRAX_NUM_EVALS} (2 epochs), steady = its training/sps of epoch 2 (evaluation "
                   "excluded), compile estimate = epoch 1 - epoch 2 seconds; N seeds = N Brax calls in sequence"),
        "comparisons": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for num_seeds in args.seeds:
        results["comparisons"].append(compare(args, num_seeds, steps_per_seed(args, num_seeds), log=log))
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # after each point: nothing measured is lost
    table = markdown_table(results)
    results["table_markdown"] = table
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(table)
    log(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    run()
