"""Stages 1 and 2 of RLHF: supervised fine-tuning (SFT) and the reward model (RM).

Both follow Ziegler et al. 2019 ("Fine-tuning language models from human preferences") and
Ouyang et al. 2022 (InstructGPT) at toy scale, on the synthetic language of :mod:`.task`:

* **SFT** (:func:`train_sft`) fits a fresh LM to demonstrations of the base distribution by
  next-token cross-entropy over the response tokens, EOS included (the model must learn when to
  stop), at temperature 1. Every step draws a fresh batch of demonstrations on the device, so the
  only gap to the floor — the base distribution's own entropy, which :mod:`.task` knows exactly —
  is the model's capacity and optimisation, never over-fitting.
* **The reward model** (:func:`train_rm`) starts from the SFT trunk with a new scalar head and
  minimises the Bradley–Terry loss ``-log σ(r(chosen) - r(rejected))`` on a *fixed* training set of
  ``cfg.rm_train_pairs`` noisily labelled pairs (a finite set, so it can over-fit as a real one does),
  minibatches drawn by random indices each step. The score of a sequence is the scalar model at
  its last valid response token (:func:`.generate.sequence_scores`). After training, the score is
  normalised to mean 0 and std 1 over responses of the SFT policy to fresh prompts (as Ziegler et
  al. 2019 normalise their reward model on samples of the initial policy), folded into the head so
  the returned params output normalised scores directly: the KL coefficient of the RL stage then
  means the same whatever scale the reward model happened to learn.

Each trainer is one ``jax.lax.scan`` over its steps, pure and jitted with the config static
(``train_sft(cfg, task, key)``; compile with ``train_sft.lower(cfg, task, key).compile()``).
The optimiser is Adam after a global gradient-norm clip at 1.

Shapes: B = batch, P = cfg.prompt_len, L = cfg.response_len, V = cfg.vocab_size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.core.rlhf.generate import (
    response_logits,
    response_mask,
    sample,
    sequence_scores,
    token_log_probs,
)
from purejaxrl_ppo.core.rlhf.model import Params, init_lm, scalar_model_from
from purejaxrl_ppo.core.rlhf.task import (
    Task,
    gold_score,
    masked_mean_entropy,
    preference_pairs,
    sample_base_responses,
    sample_prompts,
)

#: Global gradient-norm clip of both stages' optimisers.
MAX_GRAD_NORM = 1.0
#: Lower bound on the std the reward model's score is divided by (a constant RM is not blown up).
MIN_SCORE_STD = 1e-6


def make_optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Adam after clipping the global gradient norm at :data:`MAX_GRAD_NORM`."""
    return optax.chain(optax.clip_by_global_norm(MAX_GRAD_NORM), optax.adam(learning_rate))


def demonstrations(task: Task, cfg: RLHFConfig, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """``n`` fresh demonstrations of the base distribution: (prompts [n, P], responses [n, L]) int32."""
    prompt_key, response_key = jax.random.split(key)
    prompts = sample_prompts(task, cfg, prompt_key, n)
    return prompts, sample_base_responses(task, cfg, response_key, prompts)


# ----------------------------------------------------------------------------- stage 1: SFT
def sft_loss(params: Params, cfg: RLHFConfig, prompts: jax.Array, responses: jax.Array) -> jax.Array:
    """Next-token cross-entropy (nats per token) of the LM on the responses: scalar float32.

    The masked mean over every valid response token, the first EOS included, under the policy's
    distribution at temperature 1 (:func:`.generate.response_logits`: PAD excluded, as in the base
    distribution), the one the RL stage samples from. prompts: [B, P], responses: [B, L] int32,
    PAD after EOS.
    """
    log_probs = token_log_probs(response_logits(params, cfg, prompts, responses, 1.0), responses)  # [B, L]
    mask = response_mask(responses)
    return -(log_probs * mask).sum() / jnp.maximum(mask.sum(), 1.0)


@functools.partial(jax.jit, static_argnames="cfg")
def train_sft(cfg: RLHFConfig, task: Task, key: jax.Array) -> tuple[Params, dict[str, jax.Array]]:
    """Supervised fine-tuning of a fresh LM: ``cfg.sft_steps`` Adam steps on fresh demonstrations.

    Returns the LM params and metrics:

    * ``loss [sft_steps]``: the training loss of each step's batch (before its update);
    * ``heldout_loss []``: :func:`sft_loss` on ``cfg.eval_size`` fresh demonstrations after training;
    * ``base_entropy []``: the floor of ``heldout_loss``, the base distribution's mean entropy over
      the same held-out tokens (:func:`.task.masked_mean_entropy`), so the gap has little sampling noise.
    """
    init_key, train_key, eval_key = jax.random.split(key, 3)
    params = init_lm(init_key, cfg)
    optimizer = make_optimizer(cfg.sft_learning_rate)

    def step(carry, step_key):
        params, opt_state = carry
        prompts, responses = demonstrations(task, cfg, step_key, cfg.sft_batch_size)
        loss, grads = jax.value_and_grad(sft_loss)(params, cfg, prompts, responses)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    carry = (params, optimizer.init(params))
    (params, _), losses = jax.lax.scan(step, carry, jax.random.split(train_key, cfg.sft_steps))
    prompts, responses = demonstrations(task, cfg, eval_key, cfg.eval_size)
    metrics = {
        "loss": losses,
        "heldout_loss": sft_loss(params, cfg, prompts, responses),
        "base_entropy": masked_mean_entropy(task, prompts, responses),
    }
    return params, metrics


# ----------------------------------------------------------------------------- stage 2: the reward model
def pair_scores(params: Params, cfg: RLHFConfig, prompts: jax.Array, chosen: jax.Array,
                rejected: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Scores ``(r(chosen) [B], r(rejected) [B])`` of a scalar model, in one forward pass of 2B sequences."""
    scores = sequence_scores(params, cfg, jnp.concatenate([prompts, prompts]), jnp.concatenate([chosen, rejected]))
    return scores[: prompts.shape[0]], scores[prompts.shape[0]:]


def rm_loss(params: Params, cfg: RLHFConfig, prompts: jax.Array, chosen: jax.Array,
            rejected: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Bradley–Terry loss and accuracy of a reward model on labelled pairs: (loss [], accuracy []).

    loss = mean over pairs of ``-log σ(r(chosen) - r(rejected))``; accuracy = fraction with
    ``r(chosen) > r(rejected)`` (a tie counts as wrong). prompts: [B, P], chosen, rejected: [B, L] int32.
    """
    score_chosen, score_rejected = pair_scores(params, cfg, prompts, chosen, rejected)
    margin = score_chosen - score_rejected
    return -jax.nn.log_sigmoid(margin).mean(), (margin > 0).mean()


def gold_accuracy(score_chosen: jax.Array, score_rejected: jax.Array, gold_chosen: jax.Array,
                  gold_rejected: jax.Array) -> jax.Array:
    """Fraction of pairs the scores order as the gold score does, pairs of equal gold excluded: [].

    All arguments [B] float32. A tie in the scores counts as wrong; NaN if every pair has equal gold.
    """
    decided = gold_chosen != gold_rejected
    agree = (score_chosen - score_rejected) * (gold_chosen - gold_rejected) > 0
    return (agree & decided).sum() / decided.sum()


def normalized_head(params: Params, mean: jax.Array, std: jax.Array) -> Params:
    """Scalar-model params whose output is ``(output - mean) / std``: the affine map folded into the head.

    The head is linear (``h @ kernel + bias``), so dividing kernel and bias by std and shifting the bias
    by -mean/std is exact at every position.
    """
    head = params["head"]
    return {**params, "head": {"kernel": head["kernel"] / std, "bias": (head["bias"] - mean) / std}}


def policy_score_stats(rm_params: Params, policy_params: Params, task: Task, cfg: RLHFConfig,
                       key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and std ``([], [])`` of the RM's score on ``cfg.eval_size`` responses of the policy sampled at
    ``cfg.rm_norm_temperature``."""
    prompt_key, sample_key = jax.random.split(key)
    prompts = sample_prompts(task, cfg, prompt_key, cfg.eval_size)
    responses = sample(policy_params, cfg, prompts, sample_key, cfg.rm_norm_temperature).responses
    scores = sequence_scores(rm_params, cfg, prompts, responses)
    return scores.mean(), scores.std()


@functools.partial(jax.jit, static_argnames="cfg")
def train_rm(cfg: RLHFConfig, task: Task, sft_params: Params, key: jax.Array) -> tuple[Params, dict[str, jax.Array]]:
    """Train the reward model from the SFT trunk, then normalise its score on the SFT policy.

    ``cfg.rm_steps`` Adam steps of :func:`rm_loss` on minibatches of ``cfg.rm_batch_size`` pairs drawn
    (with replacement) from one fixed set of ``cfg.rm_train_pairs`` Bradley–Terry pairs. Returns the
    scalar-model params, normalised so the score has mean 0 and std 1 on ``cfg.eval_size`` responses
    sampled from ``sft_params`` at ``cfg.rm_norm_temperature`` (default 1) for fresh prompts, and metrics:

    * ``loss [rm_steps]``, ``accuracy [rm_steps]``: each step's minibatch, before its update;
    * ``heldout_accuracy []``: agreement with the (noisy) labels of ``cfg.eval_size`` fresh pairs;
    * ``heldout_gold_accuracy []``: agreement with the gold ordering of the same pairs (equal golds excluded);
    * ``raw_score_mean []``, ``raw_score_std []``: the statistics folded into the head.
    """
    init_key, data_key, train_key, norm_key = jax.random.split(key, 4)
    params = scalar_model_from(sft_params, init_key, cfg, zero_head=False)
    optimizer = make_optimizer(cfg.rm_learning_rate)
    # training and held-out pairs in one draw (pairs are independent; one sampler to compile, not two)
    pairs = preference_pairs(task, cfg, data_key, cfg.rm_train_pairs + cfg.eval_size)
    train_set = [x[: cfg.rm_train_pairs] for x in pairs]
    prompts, chosen, rejected = (x[cfg.rm_train_pairs:] for x in pairs)

    def step(carry, step_key):
        params, opt_state = carry
        index = jax.random.randint(step_key, (cfg.rm_batch_size,), 0, cfg.rm_train_pairs)
        batch = [x[index] for x in train_set]
        (loss, accuracy), grads = jax.value_and_grad(rm_loss, has_aux=True)(params, cfg, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), (loss, accuracy)

    carry = (params, optimizer.init(params))
    (params, _), (losses, accuracies) = jax.lax.scan(step, carry, jax.random.split(train_key, cfg.rm_steps))

    score_chosen, score_rejected = pair_scores(params, cfg, prompts, chosen, rejected)
    gold_chosen, gold_rejected = gold_score(task, cfg, prompts, chosen), gold_score(task, cfg, prompts, rejected)
    mean, std = policy_score_stats(params, sft_params, task, cfg, norm_key)
    metrics = {
        "loss": losses,
        "accuracy": accuracies,
        "heldout_accuracy": (score_chosen > score_rejected).mean(),
        "heldout_gold_accuracy": gold_accuracy(score_chosen, score_rejected, gold_chosen, gold_rejected),
        "raw_score_mean": mean,
        "raw_score_std": std,
    }
    return normalized_head(params, mean, jnp.maximum(std, MIN_SCORE_STD)), metrics
