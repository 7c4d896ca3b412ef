"""PPO (Schulman et al. 2017): config, loss and update; registers itself as ``"ppo"``."""

from purejaxrl_ppo.core.algos.ppo.config import POLICY_OBJECTIVE_NAMES, PPOConfig
from purejaxrl_ppo.core.algos.ppo.loss import POLICY_OBJECTIVES, adapt_kl_coef, policy_kl, ppo_loss
from purejaxrl_ppo.core.algos.ppo.update import PPO, PPOState

__all__ = ["POLICY_OBJECTIVES", "POLICY_OBJECTIVE_NAMES", "PPO", "PPOConfig", "PPOState", "adapt_kl_coef",
           "policy_kl", "ppo_loss"]
