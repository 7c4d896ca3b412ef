"""TRPO's configuration: :class:`BaseConfig` plus the natural-gradient step and the critic's fit."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from purejaxrl_ppo.core.config import COUNT, NON_NEGATIVE, POSITIVE, UNIT_OPEN, BaseConfig, ConfigError, Range, field


@dataclasses.dataclass(frozen=True)
class TRPOConfig(BaseConfig):
    """Trust Region Policy Optimisation (Schulman et al. 2015) with a natural-gradient step.

    Defaults, and why:

    * Rollout size (4 envs × 128 steps), γ 0.99 and λ 0.95 equal PPO's, so the two
      algorithms differ only in the policy update and compare at equal samples.
    * ``max_kl`` δ = 0.01, ``cg_iters`` 10, ``cg_damping`` 0.1: the TRPO paper's δ
      and OpenAI Baselines' ``trpo_mpi`` MuJoCo defaults.
    * ``fisher_subsample`` 5: ``trpo_mpi`` also forms Fisher-vector products on
      a fifth of the samples. They dominate TRPO's cost, and the Fisher (an average over
      states) is estimated well enough by a random fifth of the batch, drawn afresh
      every update, for CartPole to be solved with these defaults (``tests/integration/test_learning.py``).
    * ``line_search_steps`` 10 with ``backtrack_coef`` 0.5: the step shrinks to
      0.5⁹ ≈ 0.2% of the KL-boundary step before the update is rejected.
    * ``ent_coef`` 0: the trust region, not an entropy bonus, limits how fast
      the policy collapses (Baselines' default, ``entcoeff=0``).
    * Critic: Adam with learning rate 1e-3 for 5 epochs of 4 minibatches per
      update (``trpo_mpi``'s ``vf_stepsize`` and ``vf_iters``). Unlike PPO's joint
      loss, the critic's regression is the only thing this optimiser moves, so it
      can take larger and more steps than PPO's 2.5e-4 × 4 epochs without
      disturbing the policy.
    """

    ent_coef: float = field(0.0, "entropy bonus added to the surrogate", traced=True, bounds=NON_NEGATIVE)
    max_kl: float = field(
        0.01, "trust-region size δ: bound on mean KL(old‖new) per update", traced=True,
        bounds=Range(0.0, 1.0, low_open=True, high_open=False),
    )
    cg_iters: int = field(10, "conjugate-gradient iterations for F⁻¹g", bounds=COUNT)
    cg_damping: float = field(
        0.1, "damping λ added to the Fisher: (F + λI); must be > 0 (F alone can be singular and CG then fails)",
        traced=True, bounds=POSITIVE,
    )
    fisher_subsample: int = field(
        5, "Fisher-vector products use a random 1/k of the batch's transitions (drawn afresh each update; for a "
        "recurrent policy a random 1/k of the envs' whole sequences, at least one)", bounds=COUNT
    )
    line_search_steps: int = field(10, "backtracking line-search trials", bounds=COUNT)
    backtrack_coef: float = field(0.5, "step shrink factor per line-search trial", traced=True, bounds=UNIT_OPEN)
    critic_learning_rate: float = field(1e-3, "Adam learning rate of the critic", traced=True, bounds=POSITIVE)
    critic_epochs: int = field(5, "critic passes over the rollout per update", bounds=COUNT)
    critic_minibatches: int = field(
        4, "critic minibatches per epoch; must divide num_envs * num_steps (num_envs for a recurrent policy)",
        bounds=COUNT
    )

    algo_name: ClassVar[str] = "trpo"
    RETIRED_FIELDS: ClassVar[dict[str, str]] = {
        "vf_coef": "TRPO's critic has its own Adam optimiser, and Adam is invariant to scaling the loss, so the "
                   "coefficient had no effect beyond Adam's epsilon (removed in 0.2; set critic_learning_rate)",
    }

    @property
    def critic_minibatch_size(self) -> int:
        """Transitions per critic minibatch: ``batch_size // critic_minibatches``."""
        return self.batch_size // self.critic_minibatches

    def check(self) -> None:
        super().check()
        if self.shared_torso:
            raise ConfigError(
                "shared_torso is not supported by TRPO: its policy step bounds KL(π_old ‖ π) by moving only the "
                "policy's parameters, and its critic then fits the value function with Adam; on a shared torso "
                "that critic fit would move the policy too, after the line search and outside the trust region "
                "(and the policy step would move the critic). Use shared_torso=False (separate networks), or PPO"
            )
        if self.recurrent:
            self._check_divides_envs("critic_minibatches")
        self._check_divides("critic_minibatches")
        if self.normalize_advantages and self.batch_size == 1:
            raise ConfigError(
                "num_envs * num_steps = 1 transition per update: normalising advantages over one transition makes "
                "every advantage 0 (no policy gradient); use more envs/steps, or normalize_advantages=False"
            )
        if self.fisher_subsample > self.batch_size:
            raise ConfigError(
                f"fisher_subsample = {self.fisher_subsample} exceeds the batch size "
                f"num_envs * num_steps = {self.batch_size}; the Fisher would see no sample"
            )
