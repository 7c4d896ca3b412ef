"""purejaxrl_ppo: PPO and TRPO compiled end to end in one ``jax.lax.scan``.

>>> import jax, purejaxrl_ppo as pjp
>>> train = pjp.make_train(pjp.PPOConfig(env_name="CartPole-v1"))
>>> out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 8))

Importing the package appends the XLA:CPU deadlock workaround to ``XLA_FLAGS``
(see :mod:`purejaxrl_ppo._xla`); import it before running any jax computation.
"""

from purejaxrl_ppo._xla import apply_cpu_deadlock_workaround

apply_cpu_deadlock_workaround()

from purejaxrl_ppo.algos import PPO, TRPO, UpdateBatch, conjugate_gradient, make_fisher_vector_product, ppo_loss  # noqa: E402
from purejaxrl_ppo.config import ConfigError, PPOConfig, TRPOConfig, config_from_dict  # noqa: E402
from purejaxrl_ppo.envs import make_env, registered_env_names  # noqa: E402
from purejaxrl_ppo.gae import gae  # noqa: E402
from purejaxrl_ppo.networks import ActorCritic, make_network  # noqa: E402
from purejaxrl_ppo.sharding import seed_mesh, shard_seed_axis, train_seeds  # noqa: E402
from purejaxrl_ppo.stats import final_returns, iqm, summarize  # noqa: E402
from purejaxrl_ppo.train import (  # noqa: E402
    TrainOutput,
    TrainState,
    init_train_state,
    make_train,
    run_training,
    train_updates,
)

__version__ = "0.1.0"

__all__ = [
    "PPO",
    "TRPO",
    "ActorCritic",
    "ConfigError",
    "PPOConfig",
    "TRPOConfig",
    "TrainOutput",
    "TrainState",
    "UpdateBatch",
    "config_from_dict",
    "conjugate_gradient",
    "final_returns",
    "gae",
    "init_train_state",
    "iqm",
    "make_env",
    "make_fisher_vector_product",
    "make_network",
    "make_train",
    "ppo_loss",
    "registered_env_names",
    "run_training",
    "seed_mesh",
    "shard_seed_axis",
    "summarize",
    "train_seeds",
    "train_updates",
]
