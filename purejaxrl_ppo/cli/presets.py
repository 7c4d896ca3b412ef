"""Per-task defaults for Brax environments (the CLI applies them under flags you give).

They follow the regime of Brax's own PPO trainer, scaled to a CPU: many
parallel envs with short unrolls and large batches, observation
normalisation, a shorter horizon (γ 0.97) and no entropy bonus on the
balancing tasks; each algorithm adds its own update settings (its class's
``brax_defaults``). ``brax_preset(algo, env_name)`` returns the fields to set;
explicit arguments always win (``{**brax_preset(...), **given}``).

Measured (README, "Brax environments"): ``inverted_pendulum`` with PPO and
TRPO; ``hopper`` (locomotion preset, against Brax's own trainer in
``benchmarks/brax_locomotion.py``) and ``halfcheetah`` with PPO at 2e5 steps
only, where both improve; neither is tuned beyond that.
"""

from __future__ import annotations

from typing import Any

from purejaxrl_ppo.core.algos import registered_algorithms
from purejaxrl_ppo.core.envs import is_brax_name, parse_brax_name

#: Every Brax task: normalise observations, as Brax's PPO does.
_COMMON: dict[str, Any] = {"normalize_observations": True, "ent_coef": 0.0, "gamma": 0.97}

#: Per-task rollout size and budget; tasks not listed use ``"locomotion"``.
_TASKS: dict[str, dict[str, Any]] = {
    "inverted_pendulum": {"num_envs": 32, "num_steps": 32, "total_timesteps": 100_000},
    "inverted_double_pendulum": {"num_envs": 32, "num_steps": 32, "total_timesteps": 500_000},
    "reacher": {"num_envs": 64, "num_steps": 32, "total_timesteps": 1_000_000, "gamma": 0.95},
    # Brax's PPO settings for halfcheetah: unroll 20, γ 0.95, entropy 1e-3.
    "halfcheetah": {
        "num_envs": 128, "num_steps": 20, "total_timesteps": 2_000_000, "gamma": 0.95, "ent_coef": 1e-3,
        "scale_rewards": True, "action_squash": "tanh",
    },
    "locomotion": {
        "num_envs": 128, "num_steps": 16, "total_timesteps": 2_000_000,
        "scale_rewards": True, "action_squash": "tanh",
    },
}


def brax_preset(algo: str, env_name: str | None) -> dict[str, Any]:
    """Config fields for ``algo`` (a registered algorithm) on ``env_name``; ``{}`` unless a Brax name."""
    if env_name is None or not is_brax_name(env_name):
        return {}
    task = parse_brax_name(env_name).env_id
    algo_defaults = registered_algorithms()[algo].brax_defaults if algo in registered_algorithms() else {}
    return {**_COMMON, **algo_defaults, **_TASKS.get(task, _TASKS["locomotion"])}
