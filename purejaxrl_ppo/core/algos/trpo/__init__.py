"""TRPO (Schulman et al. 2015): config, natural-gradient machinery and update; registers itself as ``"trpo"``."""

from purejaxrl_ppo.core.algos.trpo.config import TRPOConfig
from purejaxrl_ppo.core.algos.natural_gradient import conjugate_gradient, make_fisher_vector_product
from purejaxrl_ppo.core.algos.trpo.update import TRPO, TRPOState, mean_kl, surrogate

__all__ = ["TRPO", "TRPOConfig", "TRPOState", "conjugate_gradient", "make_fisher_vector_product", "mean_kl", "surrogate"]
