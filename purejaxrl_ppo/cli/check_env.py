"""``python -m purejaxrl_ppo check-env --env NAME``: does an environment follow the env protocol?

Runs :func:`~purejaxrl_ppo.core.envs.check.env_problems` (reset and step compiled over a few envs, a short
random-action rollout, the spaces, masks, episode ends and determinism) and prints ``ok: ...`` with the
spaces (exit code 0), or one line per problem (exit code 1). An unknown name is an error (exit code 2).
"""

from __future__ import annotations

import argparse


def add_check_env_parser(sub: argparse._SubParsersAction) -> None:
    """The ``check-env`` subcommand's parser."""
    check = sub.add_parser("check-env", help="check that an environment follows the env protocol (spaces, dtypes, "
                                             "auto-reset, masks, determinism)", allow_abbrev=False)
    check.add_argument("--env", required=True, metavar="NAME",
                       help="environment name, as for train --env (e.g. CartPole-v1, brax/hopper)")
    check.add_argument("--num-envs", type=int, default=4, metavar="N", help="environments vmapped [default: 4]")
    check.add_argument("--num-steps", type=int, default=64, metavar="T",
                       help="steps of the random-action rollout; the episode-length check needs "
                            "T >= max_episode_steps + 2 [default: 64]")
    check.add_argument("--seed", type=int, default=0, help="PRNG seed of the keys and actions [default: 0]")


def cmd_check_env(args: argparse.Namespace) -> int:
    from purejaxrl_ppo.core.config import ConfigError
    from purejaxrl_ppo.core.envs import build_env
    from purejaxrl_ppo.core.envs.check import describe_spaces, env_problems

    if args.num_envs < 1 or args.num_steps < 1:
        raise ConfigError(f"--num-envs and --num-steps must be >= 1, got {args.num_envs} and {args.num_steps}")
    try:
        env = build_env(args.env)
    except ConfigError:  # EnvBuildError: the env exists but cannot be built
        raise
    except ValueError as err:  # an unknown name or option
        raise ConfigError(str(err)) from None
    problems = env_problems(env, num_envs=args.num_envs, num_steps=args.num_steps, seed=args.seed)
    if problems:
        print(f"environment {args.env} does not follow the env protocol:")
        for line in problems:
            print(f"  - {line}")
        return 1
    print(f"ok: {args.env} follows the env protocol ({describe_spaces(env)}; checked {args.num_envs} envs x "
          f"{args.num_steps} steps)")
    return 0
