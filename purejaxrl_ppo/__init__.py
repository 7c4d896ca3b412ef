"""purejaxrl_ppo: PPO and TRPO compiled end to end in one ``jax.lax.scan``.

>>> import jax, purejaxrl_ppo as pjp
>>> train = pjp.make_train(pjp.PPOConfig(env_name="CartPole-v1"))
>>> out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 8))

Layout: :mod:`purejaxrl_ppo.core` is the device side (everything inside the compiled
program); :mod:`~purejaxrl_ppo.launch` (programs on devices), :mod:`~purejaxrl_ppo.runs`
(run directories), :mod:`~purejaxrl_ppo.analysis` (statistics, plots) and
:mod:`~purejaxrl_ppo.cli` are the host side. This module re-exports the public API.

Importing the package first applies the platform workarounds of
:mod:`purejaxrl_ppo.platform`: it appends the XLA:CPU deadlock workaround to
``XLA_FLAGS`` (import it before running any jax computation) and switches jax's CPU
threefry lowering to the unrolled form, which compiles faster and gives identical
random numbers. Importing it runs no jax computation, so :func:`use_cpu_devices`
(one XLA device per CPU core) may follow the import.
"""

from purejaxrl_ppo.platform import apply_platform_workarounds, use_cpu_devices

apply_platform_workarounds()

from purejaxrl_ppo import _moved  # noqa: E402

_moved.install()  # importing a pre-0.2 module path (purejaxrl_ppo.sharding, ...) names its new place

from purejaxrl_ppo.analysis.stats import final_returns, iqm, summarize  # noqa: E402
from purejaxrl_ppo.cli.presets import brax_preset  # noqa: E402
from purejaxrl_ppo.core.advantages import gae  # noqa: E402
from purejaxrl_ppo.core.algos import (  # noqa: E402
    Algorithm,
    config_from_dict,
    make_algorithm,
    register_algorithm,
    registered_algorithms,
)
from purejaxrl_ppo.core.algos.ppo import PPO, PPOConfig, adapt_kl_coef, ppo_loss  # noqa: E402
from purejaxrl_ppo.core.algos.trpo import TRPO, TRPOConfig, conjugate_gradient, make_fisher_vector_product  # noqa: E402
from purejaxrl_ppo.core.config import BaseConfig, ConfigError  # noqa: E402
from purejaxrl_ppo.core.envs import make_env, register_env, registered_env_names  # noqa: E402
from purejaxrl_ppo.core.envs.check import EnvCheckError, check_env, env_problems  # noqa: E402
from purejaxrl_ppo.core.acting import Policy, PolicyParams  # noqa: E402
from purejaxrl_ppo.core.evaluate import evaluate  # noqa: E402
from purejaxrl_ppo.core.loop import (  # noqa: E402
    evaluation_key,
    init_train_state,
    make_train,
    run_training,
    train_updates,
)
from purejaxrl_ppo.core.networks import (  # noqa: E402
    ActorCritic,
    Network,
    TanhGaussian,
    make_network,
    register_network,
    registered_networks,
)
from purejaxrl_ppo.core.normalization import RunningMeanStd, normalize, update_stats  # noqa: E402
from purejaxrl_ppo.core.types import TrainOutput, TrainState, Transition, UpdateBatch  # noqa: E402
from purejaxrl_ppo.launch.chunked import TrainingDiverged, train_seeds_chunked  # noqa: E402
from purejaxrl_ppo.launch.layout import seed_mesh, shard_seed_axis  # noqa: E402
from purejaxrl_ppo.launch.seeds import train_seeds  # noqa: E402
from purejaxrl_ppo.launch.sweep import SweepResult, sweep  # noqa: E402
from purejaxrl_ppo.driver.control import train_durable  # noqa: E402
from purejaxrl_ppo.runs.options import RunOptions  # noqa: E402
from purejaxrl_ppo.runs.policy_files import export_policy, load_policy, load_run, save_policy  # noqa: E402
from purejaxrl_ppo.runs.run_files import load_run_file, write_run_file  # noqa: E402

__version__ = "0.2.0"

__all__ = [
    "ActorCritic",
    "Algorithm",
    "BaseConfig",
    "ConfigError",
    "EnvCheckError",
    "Network",
    "PPO",
    "PPOConfig",
    "Policy",
    "PolicyParams",
    "RunOptions",
    "RunningMeanStd",
    "SweepResult",
    "TRPO",
    "TRPOConfig",
    "TanhGaussian",
    "TrainOutput",
    "TrainState",
    "TrainingDiverged",
    "Transition",
    "UpdateBatch",
    "adapt_kl_coef",
    "brax_preset",
    "check_env",
    "config_from_dict",
    "conjugate_gradient",
    "env_problems",
    "evaluate",
    "evaluation_key",
    "export_policy",
    "final_returns",
    "gae",
    "init_train_state",
    "iqm",
    "load_policy",
    "load_run",
    "load_run_file",
    "make_algorithm",
    "make_env",
    "make_fisher_vector_product",
    "make_network",
    "make_train",
    "normalize",
    "ppo_loss",
    "register_algorithm",
    "register_network",
    "registered_algorithms",
    "register_env",
    "registered_env_names",
    "registered_networks",
    "run_training",
    "save_policy",
    "seed_mesh",
    "shard_seed_axis",
    "summarize",
    "sweep",
    "train_durable",
    "train_seeds",
    "train_seeds_chunked",
    "train_updates",
    "update_stats",
    "use_cpu_devices",
    "write_run_file",
]
