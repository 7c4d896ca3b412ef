"""The synthetic language of the RLHF pipeline: a base distribution and a hidden gold preference.

Real RLHF needs three things from its data: demonstrations to imitate (SFT), human preference
pairs that are noisy reflections of some true preference (the reward model), and that true
preference itself, which the RL stage never sees but which measures whether optimising the
learned reward helped. This module makes all three from one seed, with no downloads.

**Tokens.** ``PAD = 0``, ``EOS = 1``; the content tokens are ``2 .. V-1``. A lexicon marks
``cfg.task_positive`` content tokens +1 and ``cfg.task_negative`` -1 (the rest 0): ``sentiment [V]``.

**The base distribution** (where demonstrations and preference pairs come from) is a random
bigram model. Given the previous token (the first response token conditions on the last prompt
token) the next one is EOS with a hazard ``h_t`` that depends only on the response position
``t``, and otherwise a content token drawn from a fixed random row ``p(· | prev)``::

    P(EOS | prev, t)       = h_t = sigmoid(eos_logit[t])
    P(c | prev, t)         = (1 - h_t) · p(c | prev)            c a content token

which :class:`Task` stores as ``logits = base_logits[prev] + eos_logit[t]·onehot(EOS)`` with
``base_logits[prev]`` normalised over the content tokens and 0 at EOS. Because the hazard does not
depend on the tokens, the length distribution is known exactly and ``eos_logit`` is solved for
(bisection on a logistic ramp) so that the mean length, EOS included and cut at ``L``, equals
``cfg.base_mean_length``. Each row sends a fixed small probability (:data:`REPEAT_PROB`) to the
previous token itself, so adjacent repeats are rare in the demonstrations.

**The gold score** (:func:`gold_score`) is the mean sentiment of a response's content tokens minus
``cfg.task_repeat_penalty`` times the fraction of adjacent repeated tokens. A reward model trained on
base-distribution pairs sees few repeats and so learns the repeat penalty poorly; a policy optimised
against it finds that repeating the most positive token scores well on the proxy and badly on gold:
the designed reward over-optimisation (Gao et al. 2022, "Scaling laws for reward model
over-optimization").

**Preferences** (:func:`preference_pairs`) follow Bradley–Terry on the gold score:
``P(y1 ≻ y2) = sigmoid(bt_scale · (gold(y1) − gold(y2)))``.

Shapes: ``n`` sequences, ``P = cfg.prompt_len``, ``L = cfg.response_len``, ``V = cfg.vocab_size``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.rlhf.config import EOS, NUM_SPECIAL_TOKENS, PAD, RLHFConfig

#: Probability that a content token is followed by itself (given no EOS): rare, so a reward model
#: trained on base samples learns little about repeats.
REPEAT_PROB = 0.04
#: Standard deviation of the bigram rows' random logits: larger makes the language more predictable
#: (lower entropy) and the gold score more spread out (sentiment runs persist).
BIGRAM_LOGIT_SCALE = 2.0
#: Slope (nats per position) of the logistic EOS hazard ramp; its offset is solved for the mean length.
EOS_HAZARD_SLOPE = 0.8
#: Logit of impossible tokens (PAD in the base distribution): finite so that 0·log p stays 0.
IMPOSSIBLE_LOGIT = -1e9


class Task(NamedTuple):
    """The synthetic language (a pytree of arrays; pass it through ``jit`` as an argument).

    sentiment:   [V] float32: +1 positive, -1 negative, 0 neutral content tokens, PAD and EOS.
    base_logits: [V, V] float32: row ``prev`` holds the base distribution's log-probabilities of the
                 next content token (normalised over the content tokens), 0 at EOS (the hazard is
                 added by ``eos_logit``) and a large negative number at PAD. Rows PAD and EOS are never used.
    eos_logit:   [L] float32: logit of the EOS hazard at response position t.
    """

    sentiment: jax.Array
    base_logits: jax.Array
    eos_logit: jax.Array


# ----------------------------------------------------------------------------- construction (numpy, host)
def mean_length(eos_logit: np.ndarray) -> float:
    """Exact mean response length (EOS included, cut at L) of a token-independent hazard.

    eos_logit: [L]. Length > t iff no EOS at positions 0..t-1, so E[len] = Σ_{t<L} Π_{s<t} (1 - h_s).
    """
    hazard = 1.0 / (1.0 + np.exp(-np.asarray(eos_logit, np.float64)))
    survive = np.concatenate([[1.0], np.cumprod(1.0 - hazard)[:-1]])  # P(len > t), t = 0..L-1
    return float(survive.sum())


def solve_eos_logit(response_len: int, target_mean: float, slope: float = EOS_HAZARD_SLOPE) -> np.ndarray:
    """The hazard ramp ``eos_logit[t] = slope · (t - c)`` whose exact mean length is ``target_mean``.

    The mean decreases monotonically as ``c`` falls, so bisection finds ``c``. Returns [L] float32.
    Requires 1 <= target_mean <= L (the config checks it); the ends are clipped to the reachable range.
    """
    positions = np.arange(response_len, dtype=np.float64)
    low, high = -50.0, 50.0 + response_len  # mean ≈ 1 at c = low, ≈ L at c = high
    for _ in range(200):
        mid = 0.5 * (low + high)
        if mean_length(slope * (positions - mid)) < target_mean:
            low = mid
        else:
            high = mid
    return (slope * (positions - 0.5 * (low + high))).astype(np.float32)


def make_task(cfg: RLHFConfig) -> Task:
    """The task of ``cfg.task_seed`` (deterministic: same seed and sizes, same language).

    Uses only the ``task_*`` fields, ``vocab_size``, ``response_len`` and ``base_mean_length``.
    """
    rng = np.random.default_rng(cfg.task_seed)
    V, C = cfg.vocab_size, cfg.num_content_tokens
    content = np.arange(NUM_SPECIAL_TOKENS, V)

    lexicon = rng.permutation(content)
    sentiment = np.zeros(V, np.float32)
    sentiment[lexicon[: cfg.task_positive]] = 1.0
    sentiment[lexicon[cfg.task_positive: cfg.task_positive + cfg.task_negative]] = -1.0

    # content-to-content bigram rows; the diagonal is then set so that P(repeat) = REPEAT_PROB exactly
    rows = BIGRAM_LOGIT_SCALE * rng.standard_normal((V, C))
    probs = np.exp(rows - rows.max(axis=1, keepdims=True))
    for prev in content:
        self_col = prev - NUM_SPECIAL_TOKENS
        others = probs[prev].copy()
        others[self_col] = 0.0
        probs[prev] = (1.0 - REPEAT_PROB) * others / others.sum()
        probs[prev, self_col] = REPEAT_PROB
    probs[:NUM_SPECIAL_TOKENS] /= probs[:NUM_SPECIAL_TOKENS].sum(axis=1, keepdims=True)  # unused rows

    base_logits = np.full((V, V), IMPOSSIBLE_LOGIT, np.float32)
    base_logits[:, NUM_SPECIAL_TOKENS:] = np.log(probs)
    base_logits[:, EOS] = 0.0
    eos_logit = solve_eos_logit(cfg.response_len, cfg.base_mean_length)
    return Task(jnp.asarray(sentiment), jnp.asarray(base_logits), jnp.asarray(eos_logit))


# ----------------------------------------------------------------------------- sampling (jax, device)
def sample_prompts(task: Task, cfg: RLHFConfig, key: jax.Array, n: int) -> jax.Array:
    """Prompts of i.i.d. uniform content tokens: [n, P] int32 (no PAD, no EOS)."""
    del task  # prompts do not depend on the language; the argument keeps every sampler's signature alike
    return jax.random.randint(key, (n, cfg.prompt_len), NUM_SPECIAL_TOKENS, cfg.vocab_size, jnp.int32)


def base_step_logits(task: Task, prev: jax.Array, position: jax.Array | int) -> jax.Array:
    """The base distribution's next-token logits: [n, V] for previous tokens prev [n] at response position t."""
    eos_offset = jnp.zeros(task.base_logits.shape[-1]).at[EOS].set(task.eos_logit[position])
    return task.base_logits[prev] + eos_offset


def sample_base_responses(task: Task, cfg: RLHFConfig, key: jax.Array, prompts: jax.Array) -> jax.Array:
    """Responses of the base distribution: [n, L] int32, PAD after the first EOS.

    prompts: [n, P] int32; the first response token conditions on ``prompts[:, -1]``. A response that
    draws no EOS in L tokens is cut (it has no EOS).
    """
    if prompts.ndim != 2 or prompts.shape[1] < 1:
        raise ValueError(f"prompts must be [n, prompt_len] with at least one token; got shape {prompts.shape}")
    n = prompts.shape[0]

    def step(carry, inputs):
        prev, done = carry
        position, step_key = inputs
        token = jax.random.categorical(step_key, base_step_logits(task, prev, position)).astype(jnp.int32)
        emitted = jnp.where(done, PAD, token)
        return (token, done | (token == EOS)), emitted

    keys = jax.random.split(key, cfg.response_len)
    init = (prompts[:, -1].astype(jnp.int32), jnp.zeros(n, bool))
    _, tokens = jax.lax.scan(step, init, (jnp.arange(cfg.response_len), keys))
    return tokens.T  # [L, n] -> [n, L]


# ----------------------------------------------------------------------------- the gold preference
def before_eos(responses: jax.Array) -> jax.Array:
    """[n, L] bool: positions strictly before the first EOS (all of them if there is none)."""
    return jnp.cumsum(responses == EOS, axis=-1) == 0


def gold_score(task: Task, cfg: RLHFConfig, prompts: jax.Array, responses: jax.Array) -> jax.Array:
    """The hidden gold score of each response: [n] float32.

    Over the content tokens before the first EOS (``c_1 .. c_m``, PAD and EOS excluded)::

        gold = mean_i sentiment[c_i]  -  task_repeat_penalty · #{i : c_i = c_{i+1}} / m

    and 0 for an empty response (m = 0). Repeats count adjacent positions that are both content
    tokens. Range: [-1 - penalty, 1]. ``prompts`` [n, P] is unused (the preference ignores the
    prompt); it is taken so every scorer has the same signature.

    responses: [n, L] int32.
    """
    del prompts
    is_content = before_eos(responses) & (responses >= NUM_SPECIAL_TOKENS)
    count = is_content.sum(-1).astype(jnp.float32)
    sentiment_sum = jnp.where(is_content, task.sentiment[responses], 0.0).sum(-1)
    repeats = (is_content[:, 1:] & is_content[:, :-1] & (responses[:, 1:] == responses[:, :-1])).sum(-1)
    safe_count = jnp.maximum(count, 1.0)
    score = (sentiment_sum - cfg.task_repeat_penalty * repeats) / safe_count
    return jnp.where(count > 0, score, 0.0)


def preference_pairs(task: Task, cfg: RLHFConfig, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``n`` labelled pairs: two base responses to each prompt, the preferred one drawn by Bradley–Terry.

    y1 is chosen with probability ``sigmoid(bt_scale · (gold(y1) - gold(y2)))`` (so equal golds are a
    coin flip). Returns (prompts [n, P], chosen [n, L], rejected [n, L]), int32.
    """
    prompt_key, response_key, label_key = jax.random.split(key, 3)
    prompts = sample_prompts(task, cfg, prompt_key, n)
    # both responses in one sampling scan (half the compile time of two)
    y1, y2 = jnp.split(sample_base_responses(task, cfg, response_key, jnp.concatenate([prompts, prompts])), 2)
    margin = gold_score(task, cfg, prompts, y1) - gold_score(task, cfg, prompts, y2)
    first_wins = jax.random.bernoulli(label_key, jax.nn.sigmoid(cfg.bt_scale * margin))[:, None]
    return prompts, jnp.where(first_wins, y1, y2), jnp.where(first_wins, y2, y1)


# ----------------------------------------------------------------------------- the SFT floor
def base_token_entropies(task: Task, prompts: jax.Array, responses: jax.Array) -> jax.Array:
    """Entropy (nats) of the base distribution at each response position: [n, L] float32.

    Position t's distribution is the one response token t was drawn from (given the previous token
    and t); entries after the first EOS are meaningless and should be masked by the caller.
    prompts: [n, P], responses: [n, L] int32.
    """
    previous = jnp.concatenate([prompts[:, -1:], responses[:, :-1]], axis=1)  # [n, L]
    eos_offset = jnp.zeros((responses.shape[1], task.base_logits.shape[-1])).at[:, EOS].set(task.eos_logit)  # [L, V]
    logits = task.base_logits[previous] + eos_offset  # [n, L, V]
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -(jnp.exp(log_p) * log_p).sum(-1)


def valid_token_mask(responses: jax.Array) -> jax.Array:
    """[n, L] float32: 1 for response tokens up to and including the first EOS (the tokens SFT predicts)."""
    return jnp.concatenate([jnp.ones_like(responses[:, :1], bool), before_eos(responses)[:, :-1]], axis=1).astype(
        jnp.float32
    )


def masked_mean_entropy(task: Task, prompts: jax.Array, responses: jax.Array) -> jax.Array:
    """Mean base entropy over the valid response tokens of these samples: scalar float32.

    This is the floor of the SFT loss (a masked mean of next-token cross-entropy over the same tokens):
    the expected cross-entropy of token t given its history is at least the entropy of the base
    distribution it was drawn from, with equality for the base model itself.
    """
    mask = valid_token_mask(responses)
    return (base_token_entropies(task, prompts, responses) * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def base_token_entropy(task: Task, cfg: RLHFConfig, key: jax.Array, n: int) -> jax.Array:
    """The SFT loss floor estimated on ``n`` fresh base samples: scalar float32 (nats per token).

    The mean, over the valid response tokens (EOS included) of n samples, of the exact entropy of the
    base distribution each token was drawn from (not the sampled tokens' NLL, which has the same
    expectation and more noise).
    """
    prompt_key, response_key = jax.random.split(key)
    prompts = sample_prompts(task, cfg, prompt_key, n)
    return masked_mean_entropy(task, prompts, sample_base_responses(task, cfg, response_key, prompts))
