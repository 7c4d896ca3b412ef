"""Stage 3: PPO or TRPO on a language model, with a KL penalty to the frozen SFT reference.

One iteration (:func:`rl_iteration`, one step of the ``lax.scan`` of :func:`rl_chunk`) is
*generate → score → update*, the recipe of Ziegler et al. 2019 and of "The N Implementation
Details of RLHF with PPO" (Huang et al. 2024):

* **policy** π_θ: the language model; **action**: the next token; **state**: prompt and
  response so far; an episode is one response, ending at its first EOS (or at
  ``response_len``). Tokens after EOS are PAD and masked out of every loss and statistic.
* **generate**: ``rollout_batch`` fresh prompts, one response each, sampled at
  ``temperature`` with a key-value cache (:func:`.generate.sample`). Old log-probs are then
  recomputed by one full forward pass (the same temperature), so the first minibatch's ratio
  is exactly 1.
* **score**: the reward model's (normalised) score of the whole response, plus
  ``eos_penalty`` for a response without EOS.
* **reward** per token: r_t = -β·(log π(y_t) - log π_ref(y_t)), the score added at the last
  token: the language-model analogue of the trust region, the per-token KL penalty to the SFT
  reference. β is fixed, or adapted by Ziegler et al.'s proportional controller
  (:func:`adapt_kl_coef`). Optionally the rewards are whitened (``whiten_rewards``,
  :func:`whiten_token_rewards`).
* **advantages**: the library's GAE (:func:`purejaxrl_ppo.core.advantages.gae`), time-major over
  tokens, the episode terminating at the last valid token; value V(s_t) from a separate value
  model (see :func:`rl_init` for why separate). With ``advantage_whitening="rollout"`` they are
  whitened here, once over the rollout; with ``"minibatch"`` (the default) in each PPO minibatch.
* **update**: the library's pieces on token batches ``[B, L]`` with the mask:
  PPO = :func:`~purejaxrl_ppo.core.algos.base.minibatch_epochs` of Adam steps on
  :func:`~purejaxrl_ppo.core.algos.losses.clipped_surrogate_loss` +
  :func:`~purejaxrl_ppo.core.algos.losses.value_loss`; TRPO = the natural-gradient step of
  :func:`~purejaxrl_ppo.core.algos.natural_gradient.trust_region_step` (conjugate
  gradient on Gauss–Newton Fisher-vector products of the per-token categorical KL, line search
  under mean per-token KL(π_old ‖ π) ≤ δ), then the same value fit.

Every array of an iteration is per seed; ``jax.vmap`` over :class:`RLState` runs many seeds
(and, since β lives in the state, many β at once).
"""

from __future__ import annotations

from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp
import optax
from flax import struct

from purejaxrl_ppo.core.advantages import gae
from purejaxrl_ppo.core.algos import losses
from purejaxrl_ppo.core.algos.base import minibatch_epochs, normalize
from purejaxrl_ppo.core.algos.natural_gradient import gauss_newton_fvp, trust_region_step
from purejaxrl_ppo.core.rlhf import generate, model
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.core.rlhf.task import Task, gold_score, sample_prompts

Params = dict


# ----------------------------------------------------------------------------- state
@struct.dataclass
class RLState:
    """One seed's RL state.

    policy, value: the language model's and the value model's params; opt_state: Adam's state
    (PPO: of both models, one joint loss; TRPO: of the value model only, the policy moves by
    natural-gradient steps); kl_coef: float32 β (adapted if ``adaptive_kl``); key: PRNG key;
    iteration: int32 iterations done.
    """

    policy: Params
    value: Params
    opt_state: optax.OptState
    kl_coef: jax.Array
    key: jax.Array
    iteration: jax.Array


def optimizer(cfg: RLHFConfig) -> optax.GradientTransformation:
    """PPO: clipped-norm Adam on ``{"policy", "value"}``; TRPO: Adam on the value model alone."""
    if cfg.algo == "ppo":
        return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate, eps=1e-5))
    return optax.adam(cfg.critic_learning_rate, eps=1e-5)


def rl_init(cfg: RLHFConfig, ref_params: Params, rm_params: Params, key: jax.Array,
            kl_coef: float | jax.Array | None = None) -> RLState:
    """The RL start: the policy is the SFT model (the reference), the value model the reward model's trunk with a
    zero-initialised head (so V ≡ 0 at the start; lm-human-preferences initialises the value model from the
    reward model too).

    The value model is *separate* from the policy: a shared trunk would let the value loss move the policy
    (PPO's joint loss) and cannot be separated for TRPO, whose natural-gradient step moves only the policy
    under the KL bound; one separate value model serves both algorithms with one code path. ``kl_coef``
    overrides ``cfg.kl_coef`` (a traced value: many β in one vmapped program).
    """
    key, value_key = jax.random.split(key)
    value = model.scalar_model_from(rm_params, value_key, cfg, zero_head=True)
    opt = optimizer(cfg)
    opt_state = opt.init({"policy": ref_params, "value": value} if cfg.algo == "ppo" else value)
    beta = jnp.asarray(cfg.kl_coef if kl_coef is None else kl_coef, jnp.float32)
    return RLState(ref_params, value, opt_state, beta, key, jnp.int32(0))


# ----------------------------------------------------------------------------- one iteration's data
class TokenBatch(NamedTuple):
    """One iteration's responses and what the update needs; ``[B, L]`` unless said (B = rollout_batch)."""

    prompts: jax.Array      # [B, P] int32
    responses: jax.Array    # [B, L] int32, PAD after EOS
    mask: jax.Array         # float32, 1 up to and including EOS
    log_probs: jax.Array    # log π_old(y_t) at the temperature
    values: jax.Array       # V_old(s_t), 0 where masked
    advantages: jax.Array   # GAE, 0 where masked
    returns: jax.Array      # advantages + values (value targets)


def token_kl(old_logits: jax.Array, new_logits: jax.Array) -> jax.Array:
    """``[...]`` exact ``KL(π_old(·|s) ‖ π_new(·|s))`` per token from logits ``[..., V]``."""
    return distrax.Categorical(logits=old_logits).kl_divergence(distrax.Categorical(logits=new_logits))


def token_entropy(logits: jax.Array) -> jax.Array:
    """``[...]`` entropy of each token's distribution, logits ``[..., V]``."""
    return distrax.Categorical(logits=logits).entropy()


def kl_penalty_rewards(log_probs: jax.Array, ref_log_probs: jax.Array, scores: jax.Array, mask: jax.Array,
                       kl_coef: float | jax.Array) -> jax.Array:
    """Per-token rewards ``[B, L]``: -β·(log π(y_t) - log π_ref(y_t)) on valid tokens, ``scores [B]`` added at
    each response's last valid token (Ziegler et al. 2019, eq. 2); 0 after EOS."""
    rewards = -kl_coef * (log_probs - ref_log_probs) * mask
    last = generate.last_index(mask)
    at_last = jax.nn.one_hot(last, mask.shape[1], dtype=rewards.dtype)
    return rewards + scores[:, None] * at_last


def token_advantages(rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma: float, gae_lambda: float
                     ) -> tuple[jax.Array, jax.Array]:
    """GAE over tokens: ``(advantages [B, L], returns [B, L])``, both 0 where masked.

    The library's time-major :func:`~purejaxrl_ppo.core.advantages.gae` with time = token position:
    V(s_{t+1}) is the next token's value, and the response terminates at its last valid token (no bootstrap,
    the λ-trace cut), so nothing after EOS enters.
    """
    values = values * mask
    next_values = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
    position = jnp.arange(mask.shape[1])[None, :]
    ended = position >= generate.last_index(mask)[:, None]  # terminal at the last valid token and after it
    advantages, returns = gae(rewards.T, values.T, next_values.T, ended.T, ended.T, gamma, gae_lambda)
    return advantages.T * mask, returns.T * mask


def whiten_token_rewards(rewards: jax.Array, mask: jax.Array, mode: str) -> jax.Array:
    """Rewards ``[B, L]`` whitened over the valid tokens (``mask [B, L]``, 0 after EOS), 0 where masked.

    With μ and σ the mean and std over the valid tokens: ``"scale"`` gives r/σ (a shift would change what a
    response's length pays); ``"keep_mean"`` gives (r - μ)/σ + μ, TRL's and lm-human-preferences'
    ``whiten(rewards, shift_mean=False)``: the spread normalised, the mean kept.
    """
    mean = losses.masked_mean(rewards, mask)
    std = jnp.sqrt(losses.masked_mean(jnp.square(rewards - mean), mask)) + 1e-8
    if mode == "scale":
        return rewards / std * mask
    if mode == "keep_mean":
        return ((rewards - mean) / std + mean) * mask
    raise ValueError(f"unknown reward whitening {mode!r}; one of ('scale', 'keep_mean')")


def adapt_kl_coef(kl_coef: jax.Array, kl: jax.Array, cfg: RLHFConfig) -> jax.Array:
    """Ziegler et al. 2019, eq. 2: β ← β·(1 + K_β·e), e = clip(KL/KL_target - 1, -0.2, 0.2), K_β = n / horizon
    with n the responses of this iteration; ``kl`` is the iteration's mean KL per response (nats)."""
    error = jnp.clip(kl / cfg.kl_target - 1.0, -0.2, 0.2)
    return kl_coef * (1.0 + error * cfg.rollout_batch / cfg.kl_horizon)


def rollout(cfg: RLHFConfig, task: Task, ref_params: Params, rm_params: Params, state: RLState, key: jax.Array
            ) -> tuple[TokenBatch, dict[str, jax.Array]]:
    """Generate and score one batch of responses: the :class:`TokenBatch` and the iteration's statistics
    (means over responses: ``proxy_score``, ``gold_score``, ``kl_to_reference`` (Σ_t of the exact per-token
    KL to the reference), ``kl_sampled`` (Σ_t of log π - log π_ref, what the reward uses), ``reward``,
    ``response_length``, ``eos_fraction``)."""
    prompt_key, sample_key = jax.random.split(key)
    prompts = sample_prompts(task, cfg, prompt_key, cfg.rollout_batch)
    responses = generate.sample(state.policy, cfg, prompts, sample_key, cfg.temperature).responses
    mask = generate.response_mask(responses)
    logits = generate.response_logits(state.policy, cfg, prompts, responses, cfg.temperature)
    ref_logits = generate.response_logits(ref_params, cfg, prompts, responses, cfg.temperature)
    log_probs = generate.token_log_probs(logits, responses) * mask
    ref_log_probs = generate.token_log_probs(ref_logits, responses) * mask
    values = generate.response_values(state.value, cfg, prompts, responses) * mask

    proxy = generate.sequence_scores(rm_params, cfg, prompts, responses)
    eos = generate.has_eos(responses)
    scores = proxy + jnp.where(eos, 0.0, cfg.eos_penalty)
    rewards = kl_penalty_rewards(log_probs, ref_log_probs, scores, mask, state.kl_coef)
    if cfg.whiten_rewards:
        rewards = whiten_token_rewards(rewards, mask, cfg.reward_whitening)
    advantages, returns = token_advantages(rewards, values, mask, cfg.gamma, cfg.gae_lambda)
    if cfg.normalize_advantages and cfg.advantage_whitening == "rollout":
        advantages = normalize(advantages, mask=mask)

    stats = {
        "proxy_score": proxy.mean(),
        "gold_score": gold_score(task, cfg, prompts, responses).mean(),
        "kl_to_reference": (token_kl(logits, ref_logits) * mask).sum(axis=1).mean(),
        "kl_sampled": (log_probs - ref_log_probs).sum(axis=1).mean(),
        "reward": rewards.sum(axis=1).mean(),
        "response_length": mask.sum(axis=1).mean(),
        "eos_fraction": eos.astype(jnp.float32).mean(),
    }
    return TokenBatch(prompts, responses, mask, log_probs, values, advantages, returns), stats


# ----------------------------------------------------------------------------- the updates
def policy_terms(cfg: RLHFConfig, policy: Params, batch: TokenBatch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(logits [B, L, V], log-ratio [B, L], advantages [B, L])`` of ``batch`` under ``policy``; the advantages
    whitened over the batch's valid tokens when ``normalize_advantages`` with ``advantage_whitening="minibatch"``
    (with ``"rollout"`` :func:`rollout` whitened them once over the whole rollout)."""
    logits = generate.response_logits(policy, cfg, batch.prompts, batch.responses, cfg.temperature)
    log_ratio = (generate.token_log_probs(logits, batch.responses) - batch.log_probs) * batch.mask
    per_batch = cfg.normalize_advantages and cfg.advantage_whitening == "minibatch"
    advantages = normalize(batch.advantages, mask=batch.mask) if per_batch else batch.advantages
    return logits, log_ratio, advantages


def value_loss(cfg: RLHFConfig, value_params: Params, batch: TokenBatch) -> jax.Array:
    """The library's clipped value loss over valid tokens (clip ±``clip_value_eps`` around the old values)."""
    values = generate.response_values(value_params, cfg, batch.prompts, batch.responses)
    return losses.value_loss(values, batch.values, batch.returns, cfg.clip_value_eps, batch.mask)


def ppo_loss(cfg: RLHFConfig, params: Params, batch: TokenBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO's clipped objective on a minibatch of whole responses ``[b, L]``, masked:
    L = -E[min(r A, clip(r, 1±ε) A)] + vf_coef · L_V (Schulman et al. 2017, eq. 7 and 9; no entropy bonus, as
    in RLHF practice: the KL penalty keeps the policy near the reference instead)."""
    logits, log_ratio, advantages = policy_terms(cfg, params["policy"], batch)
    ratio = jnp.exp(log_ratio)
    policy_loss = losses.clipped_surrogate_loss(ratio, advantages, cfg.clip_eps, batch.mask)
    v_loss = value_loss(cfg, params["value"], batch)
    metrics = {
        "policy_loss": policy_loss,
        "value_loss": v_loss,
        "entropy": losses.masked_mean(token_entropy(logits), batch.mask),
        "approx_kl": losses.approx_kl(ratio, log_ratio, batch.mask),
        "clip_fraction": losses.clip_fraction(ratio, cfg.clip_eps, batch.mask),
    }
    return policy_loss + cfg.vf_coef * v_loss, metrics


def ppo_update(cfg: RLHFConfig, state: RLState, batch: TokenBatch, key: jax.Array
               ) -> tuple[RLState, dict[str, jax.Array]]:
    """``update_epochs`` × ``num_minibatches`` Adam steps on :func:`ppo_loss`, minibatches of whole responses."""
    opt = optimizer(cfg)

    def step(carry, minibatch):
        params, opt_state = carry
        (_, metrics), grads = jax.value_and_grad(lambda p: ppo_loss(cfg, p, minibatch), has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), metrics

    carry = ({"policy": state.policy, "value": state.value}, state.opt_state)
    (params, opt_state), metrics = minibatch_epochs(step, carry, batch, key, cfg.update_epochs, cfg.num_minibatches)
    return state.replace(policy=params["policy"], value=params["value"], opt_state=opt_state), metrics


def trpo_policy_step(cfg: RLHFConfig, policy: Params, batch: TokenBatch) -> tuple[Params, dict[str, jax.Array]]:
    """One natural-gradient step of the language model under mean per-token KL(π_old ‖ π) ≤ ``max_kl``.

    Surrogate L(θ) = E_tokens[π_θ(y_t)/π_old(y_t) · A_t] over valid tokens; the Fisher-vector products are
    Gauss–Newton products through the model's logits (:func:`gauss_newton_fvp` with the masked per-token
    categorical KL), solved by the library's conjugate gradient, then its backtracking line search.
    """
    mask = batch.mask
    old_logits, _, advantages = policy_terms(cfg, policy, batch)
    old_logits = jax.lax.stop_gradient(old_logits)

    def logits_of(theta: Params) -> jax.Array:
        return generate.response_logits(theta, cfg, batch.prompts, batch.responses, cfg.temperature)

    def objective(theta: Params) -> jax.Array:
        log_ratio = (generate.token_log_probs(logits_of(theta), batch.responses) - batch.log_probs) * mask
        return losses.masked_mean(losses.importance_weighted_advantage(jnp.exp(log_ratio), advantages), mask)

    def kl_from_old(theta: Params) -> jax.Array:
        return losses.masked_mean(token_kl(old_logits, logits_of(theta)), mask)

    def kl_sum(old: jax.Array, new: jax.Array) -> jax.Array:
        return (token_kl(old, new) * mask).sum()

    old_objective, gradient = jax.value_and_grad(objective)(policy)
    fvp = gauss_newton_fvp(logits_of, policy, kl_sum, cfg.cg_damping, num_samples=jnp.maximum(mask.sum(), 1.0))
    step = trust_region_step(objective, kl_from_old, policy, old_objective, gradient, fvp, cfg.max_kl,
                             cfg.cg_iters, cfg.line_search_steps, cfg.backtrack_coef)
    return step.theta, {**step.metrics(), "entropy": losses.masked_mean(token_entropy(old_logits), mask)}


def trpo_update(cfg: RLHFConfig, state: RLState, batch: TokenBatch, key: jax.Array
                ) -> tuple[RLState, dict[str, jax.Array]]:
    """TRPO: :func:`trpo_policy_step`, then ``critic_epochs`` × ``num_minibatches`` Adam steps on the value loss."""
    policy, policy_metrics = trpo_policy_step(cfg, state.policy, batch)
    opt = optimizer(cfg)

    def step(carry, minibatch):
        value, opt_state = carry
        loss, grads = jax.value_and_grad(lambda v: value_loss(cfg, v, minibatch))(value)
        updates, opt_state = opt.update(grads, opt_state, value)
        return (optax.apply_updates(value, updates), opt_state), {"value_loss": loss}

    (value, opt_state), critic_metrics = minibatch_epochs(step, (state.value, state.opt_state), batch, key,
                                                          cfg.critic_epochs, cfg.num_minibatches)
    return state.replace(policy=policy, value=value, opt_state=opt_state), {**policy_metrics, **critic_metrics}


UPDATES = {"ppo": ppo_update, "trpo": trpo_update}


# ----------------------------------------------------------------------------- the loop
def rl_iteration(cfg: RLHFConfig, task: Task, ref_params: Params, rm_params: Params, state: RLState
                 ) -> tuple[RLState, dict[str, jax.Array]]:
    """Generate → score → update, once: the new state and the iteration's scalar metrics (statistics of the
    responses generated *before* the update, the update's losses, and ``kl_coef``, the β they were scored with).
    """
    key, rollout_key, update_key = jax.random.split(state.key, 3)
    batch, stats = rollout(cfg, task, ref_params, rm_params, state, rollout_key)
    new_state, update_metrics = UPDATES[cfg.algo](cfg, state, batch, update_key)
    kl_coef = adapt_kl_coef(state.kl_coef, stats["kl_to_reference"], cfg) if cfg.adaptive_kl else state.kl_coef
    new_state = new_state.replace(kl_coef=kl_coef, key=key, iteration=state.iteration + 1)
    return new_state, {**stats, **update_metrics, "kl_coef": state.kl_coef}


def rl_chunk(cfg: RLHFConfig, task: Task, ref_params: Params, rm_params: Params, state: RLState,
             num_iterations: int) -> tuple[RLState, dict[str, jax.Array]]:
    """``num_iterations`` (static) iterations in one ``lax.scan``: the state after them and metrics
    ``{name: [num_iterations]}``."""
    def body(state, _):
        return rl_iteration(cfg, task, ref_params, rm_params, state)

    return jax.lax.scan(body, state, None, length=num_iterations)


# ----------------------------------------------------------------------------- evaluation
def evaluate(cfg: RLHFConfig, task: Task, policy: Params, ref_params: Params, rm_params: Params,
             prompts: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    """Scalars over one response per prompt of ``prompts [n, P]`` sampled at ``temperature``: ``gold_score``,
    ``proxy_score`` (the reward model's, without ``eos_penalty``) and ``kl_to_reference`` (Σ_t of the exact
    per-token KL(π ‖ π_ref) along the response: an unbiased, low-variance estimate of the sequence KL, nats)."""
    responses = generate.sample(policy, cfg, prompts, key, cfg.temperature).responses
    mask = generate.response_mask(responses)
    logits = generate.response_logits(policy, cfg, prompts, responses, cfg.temperature)
    ref_logits = generate.response_logits(ref_params, cfg, prompts, responses, cfg.temperature)
    return {
        "gold_score": gold_score(task, cfg, prompts, responses).mean(),
        "proxy_score": generate.sequence_scores(rm_params, cfg, prompts, responses).mean(),
        "kl_to_reference": (token_kl(logits, ref_logits) * mask).sum(axis=1).mean(),
    }
