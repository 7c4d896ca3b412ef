"""PPO and TRPO on classic control with the SB3 RL-Zoo's tuned hyperparameters, against the Zoo's scores.

For each of five gymnax classic-control tasks and each algorithm, the Zoo's hyperparameters
(``hyperparams/ppo.yml`` and ``hyperparams/trpo.yml`` of DLR-RM/rl-baselines3-zoo at
:data:`ZOO_COMMIT`, over the library defaults of SB3's ``PPO`` and sb3-contrib's ``TRPO``) are mapped
field by field onto :class:`~purejaxrl_ppo.PPOConfig` / :class:`~purejaxrl_ppo.TRPOConfig`
(:func:`zoo_config`; what has no counterpart here is listed per cell as a deviation). Each cell trains
``--seeds`` seeds in one vmapped program (:func:`purejaxrl_ppo.train_seeds`) for the Zoo's
``n_timesteps`` (rounded up to whole rollouts, as SB3 collects them), then evaluates every seed's final
policy deterministically, as the Zoo's ``benchmark.md`` does: a seed's score is its mean return over
``--eval-episodes`` episodes (:func:`purejaxrl_ppo.evaluate`, with the run's frozen observation
statistics when it normalised observations, and raw rewards). Across seeds: mean and IQM with 95%
stratified-bootstrap CIs (:func:`purejaxrl_ppo.analysis.study.aggregate_estimates`).

The Zoo reports one trained agent per cell, ``mean_reward ± std_reward`` over its evaluation episodes
(:data:`ZOO_SCORES`). The flag (:func:`band_flag`) compares our mean across seeds with the band
``[zoo_mean - zoo_std, zoo_mean + zoo_std]``: ``"below"`` / ``"above"`` when the whole 95% CI of our
mean lies outside the band, ``"mean below"`` / ``"mean above"`` when only the point estimate does, and
``""`` (inside) otherwise.

    PYTHONPATH=$PWD python benchmarks/sb3_zoo.py --out benchmarks/results/sb3_zoo
    PYTHONPATH=$PWD python benchmarks/sb3_zoo.py --envs CartPole-v1 --algos ppo --seeds 4 --budget-scale 0.1
    PYTHONPATH=$PWD python benchmarks/sb3_zoo.py --smoke --out /tmp/sb3_zoo_smoke

Writes ``sb3_zoo.json`` under ``--out`` (rewritten after every cell, ``"complete": false`` until the
last): command, machine, date, package and code versions, the Zoo commit, and per cell the Zoo's
hyperparameters, the config run, the deviations, per-seed scores and the statistics. ``--merge`` reruns
only the cells named by ``--envs``/``--algos`` and keeps the file's other cells (:func:`merge_results`):

    PYTHONPATH=$PWD python benchmarks/sb3_zoo.py --merge --envs CartPole-v1 MountainCarContinuous-v0 --algos ppo
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import time
from pathlib import Path
from typing import Any

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import numpy as np

from purejaxrl_ppo.analysis import study  # noqa: E402
from purejaxrl_ppo.runs import provenance  # noqa: E402

#: The Zoo commit whose ``hyperparams/{ppo,trpo}.yml`` and ``benchmark.md`` the tables below transcribe.
ZOO_COMMIT = "22e3ff2450fd92033f7f032915e1f64894a09584"
ZOO_REPO = "DLR-RM/rl-baselines3-zoo"
ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MountainCarContinuous-v0")
ALGOS = ("ppo", "trpo")

#: The Zoo's entries, as written in ``hyperparams/ppo.yml`` and ``hyperparams/trpo.yml`` at :data:`ZOO_COMMIT`
#: (``policy: 'MlpPolicy'`` everywhere, left out). ``lin_X`` is the Zoo's linear schedule from X to 0.
ZOO_HYPERPARAMS: dict[tuple[str, str], dict[str, Any]] = {
    ("ppo", "CartPole-v1"): dict(
        n_envs=8, n_timesteps=1e5, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
        ent_coef=0.0, learning_rate="lin_0.001", clip_range="lin_0.2"),
    ("ppo", "Acrobot-v1"): dict(
        normalize=True, n_envs=16, n_timesteps=1e6, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4,
        ent_coef=0.0),
    ("ppo", "MountainCar-v0"): dict(
        normalize=True, n_envs=16, n_timesteps=1e6, n_steps=16, gae_lambda=0.98, gamma=0.99, n_epochs=4,
        ent_coef=0.0),
    ("ppo", "Pendulum-v1"): dict(
        n_envs=4, n_timesteps=1e5, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
        learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4),
    ("ppo", "MountainCarContinuous-v0"): dict(
        normalize=True, n_envs=1, n_timesteps=20000, batch_size=256, n_steps=8, gamma=0.9999,
        learning_rate=7.77e-05, ent_coef=0.00429, clip_range=0.1, n_epochs=10, gae_lambda=0.9, max_grad_norm=5,
        vf_coef=0.19, use_sde=True, policy_kwargs=dict(log_std_init=-3.29, ortho_init=False)),
    ("trpo", "CartPole-v1"): dict(
        n_envs=2, n_timesteps=1e5, n_steps=512, batch_size=512, cg_damping=1e-3, gae_lambda=0.98, gamma=0.99,
        learning_rate=1e-3, n_critic_updates=20),
    ("trpo", "Acrobot-v1"): dict(normalize=True, n_envs=2, n_timesteps=1e5, n_steps=1024),
    ("trpo", "MountainCar-v0"): dict(normalize=True, n_envs=2, n_timesteps=1e5, n_steps=1024, n_critic_updates=20),
    ("trpo", "Pendulum-v1"): dict(
        n_envs=2, n_timesteps=1e5, n_steps=1024, gamma=0.9, n_critic_updates=15, use_sde=True, sde_sample_freq=4),
    ("trpo", "MountainCarContinuous-v0"): dict(
        normalize=True, n_envs=2, n_timesteps=50000, use_sde=True, sde_sample_freq=4),
}

#: The defaults a Zoo entry overrides: the constructor defaults of SB3's ``PPO`` (stable_baselines3/ppo/ppo.py)
#: and sb3-contrib's ``TRPO`` (sb3_contrib/trpo/trpo.py at 0ca7fdd8d1150bd3a48b86016a85db036efc3b6d), and of
#: their ``MlpPolicy`` (two 64-unit tanh layers each for policy and value, orthogonal init, log σ 0). The
#: Zoo's ``n_envs`` default is 1 and its ``normalize`` default false.
SB3_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": dict(
        n_envs=1, normalize=False, learning_rate=3e-4, n_steps=2048, batch_size=64, n_epochs=10, gamma=0.99,
        gae_lambda=0.95, clip_range=0.2, clip_range_vf=None, normalize_advantage=True, ent_coef=0.0, vf_coef=0.5,
        max_grad_norm=0.5, use_sde=False, sde_sample_freq=-1, target_kl=None, policy_kwargs={}),
    "trpo": dict(
        n_envs=1, normalize=False, learning_rate=1e-3, n_steps=2048, batch_size=128, gamma=0.99, cg_max_steps=15,
        cg_damping=0.1, line_search_shrinking_factor=0.8, line_search_max_iter=10, n_critic_updates=10,
        gae_lambda=0.95, use_sde=False, sde_sample_freq=-1, normalize_advantage=True, target_kl=0.01,
        sub_sampling_factor=1, policy_kwargs={}),
}
#: SB3's ``MlpPolicy`` network (``ActorCriticPolicy``): separate [64, 64] tanh MLPs for policy and value.
SB3_POLICY = dict(net_arch=(64, 64), activation_fn="tanh", log_std_init=0.0, ortho_init=True)

#: ``benchmark.md`` at :data:`ZOO_COMMIT`: (mean_reward, std_reward, n_timesteps as written, eval_episodes).
ZOO_SCORES: dict[tuple[str, str], tuple[float, float, str, int]] = {
    ("ppo", "Acrobot-v1"): (-73.506, 18.201, "1M", 2013),
    ("ppo", "CartPole-v1"): (500.000, 0.000, "100k", 300),
    ("ppo", "MountainCar-v0"): (-110.423, 19.473, "1M", 1358),
    ("ppo", "MountainCarContinuous-v0"): (88.343, 2.572, "20k", 633),
    ("ppo", "Pendulum-v1"): (-172.225, 104.159, "100k", 750),
    ("trpo", "Acrobot-v1"): (-83.114, 18.648, "100k", 1783),
    ("trpo", "CartPole-v1"): (500.000, 0.000, "100k", 300),
    ("trpo", "MountainCar-v0"): (-107.278, 13.231, "100k", 1398),
    ("trpo", "MountainCarContinuous-v0"): (92.489, 0.355, "50k", 1732),
    ("trpo", "Pendulum-v1"): (-174.631, 127.577, "100k", 750),
}

#: How our normalisation differs from SB3's ``VecNormalize`` (the Zoo's ``normalize: true``), for every cell that
#: normalises. Both clip normalised observations and scaled rewards to ±10, scale rewards by the running std of
#: the per-env discounted return (γ = the cell's γ) without subtracting its mean, and evaluate with frozen
#: observation statistics and raw rewards.
NORMALIZE_DIFFERENCES = (
    "VecNormalize updates its statistics at every env step and normalises each observation with the statistics "
    "including it; ours fold a rollout into the statistics after it and act on the statistics from before it",
    "VecNormalize starts its counts at 1e-4 (mean 0, var 1); ours start at 0 (the first rollout sets them)",
    "ours floor the return std at 1e-2 before dividing; VecNormalize divides by sqrt(var + 1e-8)",
)


def resolved_hyperparams(algo: str, env: str) -> dict[str, Any]:
    """SB3's defaults (:data:`SB3_DEFAULTS`) overridden by the Zoo's entry; ``policy_kwargs`` over
    :data:`SB3_POLICY`."""
    values = {**SB3_DEFAULTS[algo], **ZOO_HYPERPARAMS[(algo, env)]}
    values["policy_kwargs"] = {**SB3_POLICY, **values["policy_kwargs"]}
    return values


def _schedule(value: Any) -> tuple[float, bool]:
    """``(initial value, linear to 0?)`` of a Zoo value: ``"lin_X"`` or a number."""
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise ValueError(f"unknown Zoo schedule {value!r} (only lin_X is mapped)")
        return float(value[4:]), True
    return float(value), False


def _minibatches(batch: int, batch_size: int, name: str) -> int:
    """Minibatches per epoch for SB3's ``batch_size`` over a rollout of ``batch`` transitions.

    SB3 takes ``batch_size`` transitions at a time, the last minibatch shorter if it does not divide; a
    ``batch_size`` above the rollout gives one minibatch of the whole rollout.
    """
    size = min(batch_size, batch)
    if batch % size:
        raise ValueError(f"{name}: batch_size {batch_size} does not divide the rollout of {batch}; SB3's last "
                         "minibatch would be shorter, which ours cannot express")
    return batch // size


def zoo_config(algo: str, env: str, budget_scale: float = 1.0) -> tuple[pjp.BaseConfig, list[str]]:
    """Our config for the Zoo's ``(algo, env)`` cell and the list of what it cannot reproduce.

    budget_scale: multiplies the Zoo's ``n_timesteps`` (1 for the benchmark; smaller for a quick check).
    ``total_timesteps`` is the scaled budget rounded up to whole rollouts (``num_envs * num_steps``), as
    SB3's ``learn`` collects rollouts until it has at least ``n_timesteps``.
    """
    hp = resolved_hyperparams(algo, env)
    deviations: list[str] = []
    batch = hp["n_envs"] * hp["n_steps"]
    budget = max(1, math.ceil(hp["n_timesteps"] * budget_scale / batch)) * batch
    kwargs: dict[str, Any] = dict(
        env_name=env, total_timesteps=budget, num_envs=hp["n_envs"], num_steps=hp["n_steps"], gamma=hp["gamma"],
        gae_lambda=hp["gae_lambda"], normalize_advantages=hp["normalize_advantage"],
        normalize_observations=bool(hp["normalize"]), scale_rewards=bool(hp["normalize"]),
        hidden_sizes=tuple(hp["policy_kwargs"]["net_arch"]), activation=hp["policy_kwargs"]["activation_fn"],
        eval_every=0,
    )
    if hp["normalize"]:
        deviations.append("normalize: VecNormalize's statistics are updated per step, ours per rollout (see notes)")
    kw = hp["policy_kwargs"]
    # ortho_init=False: PyTorch's nn.Linear init (uniform ±1/√fan_in kernels and biases), as SB3 leaves it.
    kwargs.update(log_std_init=float(kw["log_std_init"]), ortho_init=bool(kw["ortho_init"]))
    if hp["use_sde"]:
        sde = (f"use_sde (gSDE, sde_sample_freq={hp['sde_sample_freq']}) not supported: a state-independent "
               "diagonal Gaussian with fresh noise every step")
        if kw["log_std_init"] != SB3_POLICY["log_std_init"]:
            sde += (f"; so log_std_init={kw['log_std_init']} sets our Gaussian's log σ, whereas under gSDE it is the "
                    "log σ of the exploration matrix, the action σ being that times the norm of the policy's "
                    "last hidden features")
        deviations.append(sde)
    if algo == "ppo":
        learning_rate, anneal = _schedule(hp["learning_rate"])
        clip, clip_schedule = _schedule(hp["clip_range"])
        if hp["target_kl"] is not None:
            raise ValueError("PPO target_kl (early stopping) is not mapped")
        kwargs.update(
            num_minibatches=_minibatches(batch, hp["batch_size"], f"ppo {env}"), update_epochs=hp["n_epochs"],
            learning_rate=learning_rate, anneal_lr=anneal, clip_eps=clip, anneal_clip_eps=clip_schedule,
            ent_coef=hp["ent_coef"],
            # SB3's loss adds vf_coef · MSE; ours vf_coef · ½ MSE: twice the coefficient is the same gradient.
            vf_coef=2.0 * hp["vf_coef"], clip_value_loss=hp["clip_range_vf"] is not None,
            max_grad_norm=float(hp["max_grad_norm"]),
        )
        annealed = [name for name, on in (("learning rate", anneal), ("clip range", clip_schedule)) if on]
        if annealed:
            # SB3 evaluates a schedule at progress_remaining = 1 - num_timesteps / total_timesteps after the
            # rollout (OnPolicyAlgorithm.learn), ours at 1 - k / num_updates before it: one rollout apart.
            deviations.append(f"lin_ {' and '.join(annealed)}: ours anneal{'s' if len(annealed) == 1 else ''} from "
                              "the full value at the first update, SB3 from 1 - batch/n_timesteps of it (one rollout "
                              "later)")
        return pjp.PPOConfig(**kwargs), deviations
    critic_lr, anneal = _schedule(hp["learning_rate"])
    if anneal:
        raise ValueError("a TRPO critic learning-rate schedule is not mapped")
    kwargs.update(
        ent_coef=0.0,  # sb3-contrib's TRPO has no entropy bonus
        max_kl=hp["target_kl"], cg_iters=hp["cg_max_steps"], cg_damping=hp["cg_damping"],
        backtrack_coef=hp["line_search_shrinking_factor"], line_search_steps=hp["line_search_max_iter"],
        fisher_subsample=hp["sub_sampling_factor"], critic_learning_rate=critic_lr,
        critic_epochs=hp["n_critic_updates"],
        critic_minibatches=_minibatches(batch, hp["batch_size"], f"trpo {env}"),
    )
    return pjp.TRPOConfig(**kwargs), deviations


def band_flag(mean: float, ci: tuple[float, float], zoo_mean: float, zoo_std: float) -> str:
    """Where our mean across seeds sits against the Zoo band ``[zoo_mean - zoo_std, zoo_mean + zoo_std]``.

    ``"below"`` / ``"above"``: the whole 95% CI ``ci = (low, high)`` of our mean lies outside the band;
    ``"mean below"`` / ``"mean above"``: the point ``mean`` lies outside but the CI reaches the band;
    ``""``: the mean is inside the band (edges included).
    """
    low, high = zoo_mean - zoo_std, zoo_mean + zoo_std
    if ci[1] < low:
        return "below"
    if ci[0] > high:
        return "above"
    if mean < low:
        return "mean below"
    if mean > high:
        return "mean above"
    return ""


def evaluate_seeds(config: pjp.BaseConfig, out: Any, episodes: int, key: jax.Array) -> np.ndarray:
    """Deterministic returns ``[seeds, episodes]`` of every seed's final policy in ``out`` (a vmapped
    :class:`~purejaxrl_ppo.TrainOutput`), with its frozen observation statistics when it normalised them."""
    seeds = jax.tree_util.tree_leaves(out.params)[0].shape[0]
    keys = jax.random.split(key, seeds)
    if config.normalize_observations:
        stats = out.state.normalizer.obs
        fn = jax.vmap(lambda p, k, s: pjp.evaluate(config, p, k, episodes, s))
        return np.asarray(jax.jit(fn)(out.params, keys, stats))
    fn = jax.vmap(lambda p, k: pjp.evaluate(config, p, k, episodes))
    return np.asarray(jax.jit(fn)(out.params, keys))


def run_cell(algo: str, env: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train and evaluate one cell; the JSON row (see the module docstring)."""
    config, deviations = zoo_config(algo, env, args.budget_scale)
    start = time.perf_counter()
    out = pjp.train_seeds(config, args.seeds, jax.random.PRNGKey(args.seed))
    jax.block_until_ready(out.params)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    episodes = evaluate_seeds(config, out, args.eval_episodes, jax.random.PRNGKey(args.seed + 1))
    eval_seconds = time.perf_counter() - start
    scores = episodes.mean(axis=1)  # [seeds]: each seed's mean evaluation return
    points, intervals = study.aggregate_estimates({"ours": scores[:, None]}, reps=args.bootstrap_reps)
    zoo_mean, zoo_std, zoo_steps, zoo_episodes = ZOO_SCORES[(algo, env)]
    mean_ci = intervals["ours"]["mean"]
    return {
        "algo": algo, "env": env, "seeds": args.seeds, "eval_episodes_per_seed": args.eval_episodes,
        "zoo_n_timesteps": float(resolved_hyperparams(algo, env)["n_timesteps"]),
        "env_steps_per_seed": config.num_updates * config.batch_size, "budget_scale": args.budget_scale,
        "zoo_hyperparams": ZOO_HYPERPARAMS[(algo, env)],
        "resolved_hyperparams": resolved_hyperparams(algo, env),
        "config": config.to_dict(), "deviations": deviations,
        "score_per_seed": [float(x) for x in scores],
        "episode_std_per_seed": [float(x) for x in episodes.std(axis=1)],
        "episode_std_pooled": float(episodes.std()),
        "mean": points["ours"]["mean"], "mean_ci95": list(mean_ci),
        "iqm": points["ours"]["iqm"], "iqm_ci95": list(intervals["ours"]["iqm"]),
        "median": float(np.median(scores)), "min": float(scores.min()), "max": float(scores.max()),
        "zoo_mean": zoo_mean, "zoo_std": zoo_std, "zoo_n_timesteps_written": zoo_steps,
        "zoo_eval_episodes": zoo_episodes,
        "flag": band_flag(points["ours"]["mean"], mean_ci, zoo_mean, zoo_std),
        "train_seconds": train_seconds, "eval_seconds": eval_seconds,
    }


def cell_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` in the order a full run writes them: by env (:data:`ENVS`), then algorithm (:data:`ALGOS`)."""
    return sorted(rows, key=lambda r: (ENVS.index(r["env"]), ALGOS.index(r["algo"])))


def merge_results(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``current`` (this run's header and cells) with ``previous``'s cells that this run did not rerun.

    The header is this run's; ``earlier_run`` keeps ``previous``'s (command, date, code, machine, total
    seconds), ``note`` says which cells come from which run, ``complete`` is whether every cell is present,
    and this run's ``total_seconds`` becomes ``rerun_seconds`` (it is not the whole table's).
    """
    rerun = {(r["algo"], r["env"]) for r in current["results"]}
    kept = [r for r in previous["results"] if (r["algo"], r["env"]) not in rerun]
    earlier = previous.get("earlier_run") or {k: previous.get(k)
                                              for k in ("command", "date", "code", "machine", "total_seconds")}
    names = ", ".join(f"{a.upper()} {e}" for a, e in sorted(rerun, key=lambda c: (ENVS.index(c[1]), c[0])))
    note = (f"{names} rerun by the command above (the library's log_std_init, ortho_init and anneal_clip_eps "
            f"map the Zoo's policy_kwargs and lin_ clip range); the other cells are from `{earlier['command']}` "
            f"of {earlier['date']} at commit {str((earlier.get('code') or {}).get('commit'))[:12]}, whose configs "
            "and library code path are unchanged")
    results = cell_order(kept + current["results"])
    complete = {(r["algo"], r["env"]) for r in results} == {(a, e) for a in ALGOS for e in ENVS}
    merged = {**current, "results": results, "complete": complete and current["complete"], "earlier_run": earlier,
              "note": note}
    if "total_seconds" in merged:
        merged["rerun_seconds"] = merged.pop("total_seconds")
    return merged


def header(argv: list[str]) -> dict[str, Any]:
    """Provenance of the run: command, machine, date, versions, code version and the Zoo commit."""
    return {
        "kind": "sb3_zoo",
        "command": "python benchmarks/sb3_zoo.py " + " ".join(shlex.quote(a) for a in argv),
        "machine": provenance.machine_description(), "date": time.strftime("%Y-%m-%d"),
        "versions": provenance.versions(), "code": provenance.code_version(),
        "zoo_repo": ZOO_REPO, "zoo_commit": ZOO_COMMIT,
        "zoo_files": ["hyperparams/ppo.yml", "hyperparams/trpo.yml", "benchmark.md"],
        "normalize_differences": list(NORMALIZE_DIFFERENCES),
        "flag_rule": band_flag.__doc__.split("\n\n")[0].strip() + " " + " ".join(
            band_flag.__doc__.split("\n\n")[1].split()),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--seeds", type=int, default=32, help="seeds per cell, trained in one vmapped program")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiplies the Zoo's n_timesteps")
    parser.add_argument("--eval-episodes", type=int, default=32, help="deterministic episodes per seed")
    parser.add_argument("--bootstrap-reps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true",
                        help="CartPole-v1 only, both algos, 2 seeds, 1%% of the budget, 2 episodes (a wiring check)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sb3_zoo"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the cells of the existing sb3_zoo.json under --out that this run does not rerun")
    args = parser.parse_args(argv)
    if args.smoke:
        args.envs, args.seeds, args.budget_scale, args.eval_episodes, args.bootstrap_reps = (
            ["CartPole-v1"], 2, 0.01, 2, 100)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {**header(argv), "smoke": args.smoke, "results": [], "complete": False}
    path = args.out / "sb3_zoo.json"
    previous = json.loads(path.read_text()) if args.merge and path.exists() else None

    def write(result: dict[str, Any]) -> dict[str, Any]:
        merged = merge_results(previous, result) if previous is not None else result
        path.write_text(json.dumps(merged, indent=1) + "\n")
        return merged

    start = time.perf_counter()
    for env in args.envs:
        for algo in args.algos:
            row = run_cell(algo, env, args)
            result["results"].append(row)
            low, high = row["mean_ci95"]
            print(f"{algo} {env}: mean {row['mean']:.2f} [{low:.2f}, {high:.2f}] IQM {row['iqm']:.2f} vs Zoo "
                  f"{row['zoo_mean']:.2f} ± {row['zoo_std']:.2f} {row['flag'] or 'inside'} "
                  f"(train {row['train_seconds']:.0f} s, eval {row['eval_seconds']:.0f} s)", flush=True)
            write(result)  # survives a stop
    result["complete"] = True
    result["total_seconds"] = time.perf_counter() - start
    return write(result)


if __name__ == "__main__":
    main()
