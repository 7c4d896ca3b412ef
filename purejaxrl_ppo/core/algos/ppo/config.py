"""PPO's configuration: :class:`BaseConfig` plus the update's hyperparameters."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from purejaxrl_ppo.core.config import COUNT, NON_NEGATIVE, POSITIVE, UNIT_OPEN, BaseConfig, ConfigError, field

#: PPO policy objectives (Schulman et al. 2017, Section 3-4 and Table 1); :data:`.loss.POLICY_OBJECTIVES` implements them.
POLICY_OBJECTIVE_NAMES = ("clip", "kl_adaptive", "kl_fixed", "unclipped")


@dataclasses.dataclass(frozen=True)
class PPOConfig(BaseConfig):
    """Proximal Policy Optimisation (Schulman et al. 2017) with the clipped surrogate.

    Defaults are PureJaxRL's CartPole-v1 values: 4 envs × 128 steps, 4 epochs ×
    4 minibatches, learning rate 2.5e-4 linearly annealed to 0, γ 0.99, λ 0.95,
    ε 0.2, entropy 0.01, value 0.5, global gradient norm 0.5.

    ``policy_objective`` selects the surrogate of the paper's Table 1: ``"clip"``
    (eq. 7, the default), ``"kl_fixed"`` (eq. 8 with constant β = ``kl_coef``),
    ``"kl_adaptive"`` (eq. 8 with β starting at ``kl_coef`` and adapted towards
    ``kl_target`` after every update, Section 4) or ``"unclipped"`` (the plain
    importance-weighted surrogate E[r A], eq. 6).
    """

    vf_coef: float = field(0.5, "value-loss coefficient in the joint loss", traced=True, bounds=NON_NEGATIVE)
    update_epochs: int = field(4, "passes over the rollout per update", bounds=COUNT)
    num_minibatches: int = field(
        4, "minibatches per epoch; must divide num_envs * num_steps (num_envs for a recurrent policy: minibatches "
        "of whole sequences)", bounds=COUNT,
    )
    learning_rate: float = field(2.5e-4, "Adam learning rate (actor and critic)", traced=True, bounds=POSITIVE)
    anneal_lr: bool = field(True, "anneal the learning rate linearly to 0 over training")
    clip_eps: float = field(0.2, "PPO clipping ε for the probability ratio", traced=True, bounds=UNIT_OPEN)
    anneal_clip_eps: bool = field(
        False, "anneal clip_eps linearly to 0 over training by the learning rate's fraction 1 - update/num_updates "
        "(SB3's lin_ clip range); the value clipping and clip_fraction use the same ε"
    )
    clip_value_loss: bool = field(True, "clip the value update to ±clip_eps around the old value")
    max_grad_norm: float = field(0.5, "global gradient-norm clip", traced=True, bounds=POSITIVE)
    policy_objective: str = field(
        "clip", "policy surrogate (the PPO paper's Table 1 objectives)", choices=POLICY_OBJECTIVE_NAMES
    )
    kl_coef: float = field(
        1.0, "KL-penalty coefficient β (kl_fixed: constant; kl_adaptive: initial value)", traced=True,
        bounds=NON_NEGATIVE,
    )
    kl_target: float = field(
        0.01, "kl_adaptive's target KL d_targ: β halves below d_targ/1.5, doubles above 1.5·d_targ", traced=True,
        bounds=POSITIVE,
    )

    algo_name: ClassVar[str] = "ppo"

    @property
    def minibatch_size(self) -> int:
        """Transitions per minibatch: ``batch_size // num_minibatches``."""
        return self.batch_size // self.num_minibatches

    def check(self) -> None:
        super().check()
        if self.recurrent:
            self._check_divides_envs("num_minibatches")
        self._check_divides("num_minibatches")
        if self.normalize_advantages and self.minibatch_size == 1:
            raise ConfigError(
                f"num_envs * num_steps / num_minibatches = {self.batch_size} / {self.num_minibatches} = 1 transition "
                "per minibatch: normalising advantages over one transition makes every advantage 0 (no policy "
                "gradient); use fewer minibatches (or more envs/steps), or normalize_advantages=False"
            )
