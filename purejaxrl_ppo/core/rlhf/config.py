"""The RLHF pipeline's configuration: one frozen dataclass, every field a CLI flag of ``rlhf``.

Fields are grouped by stage (their names say which): the synthetic task (``task_*``,
:mod:`.task`), the language model's shape (:mod:`.model`), SFT (``sft_*``), the reward model
(``rm_*``), and RL (generation, the KL-to-reference reward, and the PPO or TRPO update).
The defaults are the CPU-sized pipeline (a few minutes on 2 cores); the same code runs a
bigger model by raising ``d_model``, ``num_layers``, the lengths and the batch sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from purejaxrl_ppo.core.config import (
    COUNT,
    NON_NEGATIVE,
    NON_NEGATIVE_COUNT,
    POSITIVE,
    UNIT_OPEN,
    ConfigError,
    Range,
    Validated,
    field,
)

#: Token ids every vocabulary reserves (the rest are content tokens).
PAD, EOS = 0, 1
NUM_SPECIAL_TOKENS = 2
RL_ALGOS = ("ppo", "trpo")
#: ``reward_whitening``: how ``whiten_rewards`` whitens (:func:`.rl.whiten_token_rewards`).
REWARD_WHITENINGS = ("scale", "keep_mean")
#: ``advantage_whitening``: over what ``normalize_advantages`` whitens.
ADVANTAGE_WHITENINGS = ("minibatch", "rollout")


@dataclasses.dataclass(frozen=True)
class RLHFConfig(Validated):
    """SFT → reward model → PPO/TRPO with a KL penalty to the SFT reference, on a synthetic language."""

    # ---------------------------------------------------------------- the synthetic task
    task_seed: int = field(0, "seed of the synthetic language (lexicon, base distribution); fixed per task",
                           bounds=NON_NEGATIVE_COUNT)
    vocab_size: int = field(16, "tokens, including PAD (0) and EOS (1)", bounds=Range(4))
    prompt_len: int = field(4, "prompt tokens (content tokens, no padding)", bounds=COUNT)
    response_len: int = field(12, "maximum response tokens (EOS included); longer responses are cut", bounds=Range(2))
    task_positive: int = field(3, "content tokens the gold score values +1", bounds=COUNT)
    task_negative: int = field(3, "content tokens the gold score values -1", bounds=NON_NEGATIVE_COUNT)
    task_repeat_penalty: float = field(
        1.0, "gold score penalty per adjacent repeated token, as a fraction of the response length "
        "(what the base distribution rarely shows, so the reward model learns it poorly)", bounds=NON_NEGATIVE,
    )
    base_mean_length: float = field(6.0, "mean response length of the base (demonstration) distribution",
                                    bounds=Range(1.0))
    bt_scale: float = field(
        8.0, "Bradley-Terry label noise: P(y1 preferred) = sigmoid(bt_scale * (gold(y1) - gold(y2)))",
        bounds=POSITIVE,
    )

    # ---------------------------------------------------------------- the model
    d_model: int = field(64, "transformer width", bounds=COUNT)
    num_layers: int = field(2, "transformer blocks", bounds=COUNT)
    num_heads: int = field(4, "attention heads; must divide d_model", bounds=COUNT)
    mlp_ratio: int = field(4, "MLP hidden width as a multiple of d_model", bounds=COUNT)

    # ---------------------------------------------------------------- stage 1: SFT
    sft_steps: int = field(600, "Adam steps of next-token cross-entropy on demonstrations", bounds=NON_NEGATIVE_COUNT)
    sft_batch_size: int = field(64, "demonstrations per SFT step (fresh samples of the base distribution)",
                                bounds=COUNT)
    sft_learning_rate: float = field(1e-3, "SFT Adam learning rate", bounds=POSITIVE)
    eval_size: int = field(512, "held-out demonstrations / preference pairs / prompts for each stage's report",
                           bounds=COUNT)

    # ---------------------------------------------------------------- stage 2: reward model
    rm_steps: int = field(600, "Adam steps of the Bradley-Terry loss on preference pairs", bounds=NON_NEGATIVE_COUNT)
    rm_batch_size: int = field(64, "preference pairs per reward-model step", bounds=COUNT)
    rm_learning_rate: float = field(5e-4, "reward-model Adam learning rate", bounds=POSITIVE)
    rm_train_pairs: int = field(
        512, "preference pairs in the reward model's training set (a fixed set: the reward model is an imperfect "
        "proxy of gold; whether optimising it lowers gold depends on the task, see the RLHF results' "
        "over-optimisation section)", bounds=COUNT,
    )
    rm_norm_temperature: float = field(
        1.0, "temperature of the SFT samples the reward model's score is normalised on (mean 0, std 1); "
        "lm-human-preferences normalises at the RL sampling temperature: set it to `temperature` for that",
        bounds=POSITIVE,
    )

    # ---------------------------------------------------------------- stage 3: RL
    algo: str = field("ppo", "RL algorithm of stage 3", choices=RL_ALGOS)
    num_iterations: int = field(60, "generate -> score -> update iterations", bounds=NON_NEGATIVE_COUNT)
    rollout_batch: int = field(64, "prompts (one response each) per iteration", bounds=COUNT)
    temperature: float = field(1.0, "sampling temperature, also used for every log-probability", bounds=POSITIVE)
    kl_coef: float = field(0.05, "β of the per-token reward -β·(log π − log π_ref) (initial value if adaptive)",
                           bounds=NON_NEGATIVE)
    adaptive_kl: bool = field(False, "adapt β towards kl_target (Ziegler et al. 2019, eq. 2)")
    kl_target: float = field(2.0, "adaptive KL: target mean KL per sequence (nats)", bounds=POSITIVE)
    kl_horizon: int = field(1000, "adaptive KL: horizon (responses) of the proportional controller", bounds=COUNT)
    eos_penalty: float = field(
        0.0, "score added to responses with no EOS (a negative number penalises them); 0 = off", bounds=Range(-1e9),
    )
    whiten_rewards: bool = field(False, "whiten the per-token rewards over the batch's valid tokens (reward_whitening)")
    reward_whitening: str = field(
        "scale", "with whiten_rewards: 'scale' divides by the std (r/σ), 'keep_mean' whitens and adds the mean "
        "back ((r-μ)/σ+μ, as TRL and lm-human-preferences)", choices=REWARD_WHITENINGS,
    )
    normalize_advantages: bool = field(True, "whiten advantages over the valid tokens (advantage_whitening)")
    advantage_whitening: str = field(
        "minibatch", "with normalize_advantages: over each PPO minibatch ('minibatch') or once over the whole "
        "rollout before the epochs ('rollout', as TRL and lm-human-preferences); TRPO's one step sees the whole "
        "rollout either way", choices=ADVANTAGE_WHITENINGS,
    )
    gamma: float = field(1.0, "discount over tokens", bounds=Range(0.0, 1.0, low_open=True, high_open=False))
    gae_lambda: float = field(0.95, "GAE λ over tokens", bounds=Range(0.0, 1.0, high_open=False))
    # PPO
    update_epochs: int = field(4, "PPO: passes over each iteration's responses", bounds=COUNT)
    num_minibatches: int = field(4, "PPO: minibatches of whole responses per epoch; must divide rollout_batch",
                                 bounds=COUNT)
    learning_rate: float = field(5e-4, "PPO: Adam learning rate of policy and value model", bounds=POSITIVE)
    clip_eps: float = field(0.2, "PPO: ratio clipping ε", bounds=UNIT_OPEN)
    clip_value_eps: float = field(0.2, "value clipping ±ε around the old value (PPO and TRPO's critic)",
                                  bounds=POSITIVE)
    vf_coef: float = field(0.5, "PPO: value-loss coefficient", bounds=NON_NEGATIVE)
    max_grad_norm: float = field(1.0, "PPO: global gradient-norm clip", bounds=POSITIVE)
    # TRPO
    max_kl: float = field(0.01, "TRPO: bound δ on the mean per-token KL(π_old ‖ π) of one step", bounds=POSITIVE)
    cg_iters: int = field(10, "TRPO: conjugate-gradient iterations", bounds=COUNT)
    cg_damping: float = field(0.1, "TRPO: Fisher damping", bounds=NON_NEGATIVE)
    line_search_steps: int = field(10, "TRPO: backtracking line-search trials", bounds=COUNT)
    backtrack_coef: float = field(0.8, "TRPO: step shrink factor per trial", bounds=UNIT_OPEN)
    critic_epochs: int = field(4, "TRPO: value-model epochs per iteration", bounds=COUNT)
    critic_learning_rate: float = field(5e-4, "TRPO: value-model Adam learning rate", bounds=POSITIVE)

    algo_name: ClassVar[str] = "rlhf"

    # ---------------------------------------------------------------- derived sizes
    @property
    def seq_len(self) -> int:
        """Prompt plus response tokens."""
        return self.prompt_len + self.response_len

    @property
    def num_content_tokens(self) -> int:
        return self.vocab_size - NUM_SPECIAL_TOKENS

    @property
    def minibatch_size(self) -> int:
        """Responses per PPO minibatch (and per TRPO critic minibatch)."""
        return self.rollout_batch // self.num_minibatches

    def check(self) -> None:
        if self.d_model % self.num_heads:
            raise ConfigError(f"d_model = {self.d_model} is not divisible by num_heads = {self.num_heads}; each head "
                              "gets d_model / num_heads channels")
        if self.task_positive + self.task_negative > self.num_content_tokens:
            raise ConfigError(
                f"task_positive + task_negative = {self.task_positive + self.task_negative} exceeds the "
                f"{self.num_content_tokens} content tokens of vocab_size = {self.vocab_size} (2 are PAD and EOS)")
        if self.rollout_batch % self.num_minibatches:
            raise ConfigError(f"rollout_batch = {self.rollout_batch} is not divisible by num_minibatches = "
                              f"{self.num_minibatches}; choose a divisor of {self.rollout_batch}")
        if self.base_mean_length > self.response_len:
            raise ConfigError(f"base_mean_length = {self.base_mean_length} exceeds response_len = "
                              f"{self.response_len}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict of every field; JSON-serialisable."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
