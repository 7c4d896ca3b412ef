"""purejaxrl_ppo: PPO and TRPO compiled end to end in one ``jax.lax.scan``.

>>> import jax, purejaxrl_ppo as pjp
>>> train = pjp.make_train(pjp.PPOConfig(env_name="CartPole-v1"))
>>> out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 8))

Importing the package appends the XLA:CPU deadlock workaround to ``XLA_FLAGS``
(see :mod:`purejaxrl_ppo._xla`; import it before running any jax computation)
and switches jax's CPU threefry lowering to the unrolled form, which compiles
faster and gives identical random numbers (see :mod:`purejaxrl_ppo._prng`).
Importing it runs no jax computation, so :func:`use_cpu_devices` (one XLA
device per CPU core) may follow the import.
"""

from purejaxrl_ppo._xla import apply_cpu_deadlock_workaround, use_cpu_devices

apply_cpu_deadlock_workaround()

from purejaxrl_ppo._prng import use_unrolled_threefry_on_cpu  # noqa: E402

use_unrolled_threefry_on_cpu()

from purejaxrl_ppo.algos import (  # noqa: E402
    PPO,
    TRPO,
    UpdateBatch,
    adapt_kl_coef,
    conjugate_gradient,
    make_fisher_vector_product,
    ppo_loss,
)
from purejaxrl_ppo.config import ConfigError, PPOConfig, TRPOConfig, config_from_dict  # noqa: E402
from purejaxrl_ppo.config_files import RunOptions, load_run_file, write_run_file  # noqa: E402
from purejaxrl_ppo.envs import make_env, registered_env_names  # noqa: E402
from purejaxrl_ppo.evaluation import evaluate, load_policy, save_policy  # noqa: E402
from purejaxrl_ppo.gae import gae  # noqa: E402
from purejaxrl_ppo.networks import ActorCritic, TanhGaussian, make_network  # noqa: E402
from purejaxrl_ppo.normalization import RunningMeanStd, normalize, update_stats  # noqa: E402
from purejaxrl_ppo.presets import brax_preset  # noqa: E402
from purejaxrl_ppo.runner import TrainingDiverged, train_durable, train_seeds_chunked  # noqa: E402
from purejaxrl_ppo.sharding import seed_mesh, shard_seed_axis, train_seeds  # noqa: E402
from purejaxrl_ppo.stats import final_returns, iqm, summarize  # noqa: E402
from purejaxrl_ppo.sweep import SweepResult, sweep  # noqa: E402
from purejaxrl_ppo.train import (  # noqa: E402
    TrainOutput,
    TrainState,
    evaluation_key,
    init_train_state,
    make_train,
    run_training,
    train_updates,
)

__version__ = "0.1.0"

__all__ = [
    "ActorCritic",
    "ConfigError",
    "PPO",
    "PPOConfig",
    "RunOptions",
    "RunningMeanStd",
    "SweepResult",
    "TRPO",
    "TRPOConfig",
    "TanhGaussian",
    "TrainOutput",
    "TrainState",
    "TrainingDiverged",
    "UpdateBatch",
    "adapt_kl_coef",
    "brax_preset",
    "config_from_dict",
    "conjugate_gradient",
    "evaluate",
    "evaluation_key",
    "final_returns",
    "gae",
    "init_train_state",
    "iqm",
    "load_policy",
    "load_run_file",
    "make_env",
    "make_fisher_vector_product",
    "make_network",
    "make_train",
    "normalize",
    "ppo_loss",
    "registered_env_names",
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
