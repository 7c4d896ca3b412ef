"""Stable-Baselines3 PPO or sb3-contrib TRPO on CartPole-v1, one seed per process, CPU torch.

Matches PureJaxRL's CartPole PPO config (4 envs x 128 steps, 4 epochs x 4
minibatches, lr 2.5e-4 annealed, clip 0.2, ent 0.01, vf 0.5, grad-norm 0.5,
64x64 tanh) and, for TRPO, the same rollout size. Prints one JSON line.

    python sb3.py --algo ppo --seed 0 --total-timesteps 50000
"""

import argparse
import json
import resource
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=["ppo", "trpo"], default="ppo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total-timesteps", type=int, default=50_000)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one process per core
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env("CartPole-v1", n_envs=4, seed=args.seed)
    common = dict(n_steps=128, gamma=0.99, gae_lambda=0.95, seed=args.seed, device="cpu", verbose=0,
                  policy_kwargs=dict(net_arch=[64, 64], activation_fn=torch.nn.Tanh))
    if args.algo == "ppo":
        from stable_baselines3 import PPO

        model = PPO("MlpPolicy", env, learning_rate=lambda frac: 2.5e-4 * frac, batch_size=128, n_epochs=4,
                    clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, **common)
        name = "Stable-Baselines3 PPO"
    else:
        from sb3_contrib import TRPO

        model = TRPO("MlpPolicy", env, batch_size=128, **common)
        name = "sb3-contrib TRPO"
    start = time.perf_counter()
    model.learn(total_timesteps=args.total_timesteps)
    seconds = time.perf_counter() - start
    mean_return, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=32, deterministic=False)
    import stable_baselines3

    print(json.dumps({
        "peer": name,
        "seed": args.seed,
        "env_steps": int(model.num_timesteps),
        "seconds": seconds,
        "env_steps_per_second": model.num_timesteps / seconds,
        "final_return": float(mean_return),
        "final_return_kind": "mean of 32 stochastic evaluation episodes at the end",
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__},
    }))


if __name__ == "__main__":
    main()
