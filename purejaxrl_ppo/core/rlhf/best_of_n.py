"""Best-of-n samples: ``N`` responses of a policy per prompt, with their gold and proxy scores.

The device side of the best-of-n baseline of Gao et al. 2022: the statistics over these samples (the
expected gold of best-of-n for every n <= N, its KL to the policy) are
:mod:`purejaxrl_ppo.analysis.overoptimisation`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.rlhf import generate
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.core.rlhf.task import Task, gold_score

Params = dict


class Samples(NamedTuple):
    """``N`` scored responses per prompt: responses ``[prompts, N, L]`` int32, gold and proxy ``[prompts, N]``
    float32 (proxy: the reward model's normalised score, without ``eos_penalty``)."""

    responses: jax.Array
    gold: jax.Array
    proxy: jax.Array


@functools.partial(jax.jit, static_argnames=("cfg", "num_samples"))
def sample_and_score(cfg: RLHFConfig, policy: Params, rm_params: Params, task: Task, prompts: jax.Array,
                     key: jax.Array, num_samples: int) -> Samples:
    """``num_samples`` responses of ``policy`` at ``cfg.temperature`` to each prompt of ``prompts [P, prompt_len]``.

    One prompt at a time (``lax.map``), its ``num_samples`` responses in one batch, so the key-value cache
    holds ``num_samples`` sequences, never ``P × num_samples``. Prompt ``i`` samples with ``fold_in(key, i)``.
    """
    def one_prompt(args: tuple[jax.Array, jax.Array]) -> Samples:
        index, prompt = args
        repeated = jnp.broadcast_to(prompt, (num_samples, prompt.shape[0]))
        responses = generate.sample(policy, cfg, repeated, jax.random.fold_in(key, index), cfg.temperature).responses
        return Samples(responses, gold_score(task, cfg, repeated, responses),
                       generate.sequence_scores(rm_params, cfg, repeated, responses))

    return jax.lax.map(one_prompt, (jnp.arange(prompts.shape[0]), prompts))
