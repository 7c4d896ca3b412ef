"""The PPO update: minibatch epochs of Adam steps on :func:`~.loss.ppo_loss`.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms": the clipped
surrogate (eq. 7) by default, or the paper's alternatives compared in its
Table 1 (``PPOConfig.policy_objective``): the KL-penalised surrogate (eq. 8)
with a fixed or adaptive coefficient β (Section 4), and the unclipped
surrogate (eq. 6). Total loss as eq. (9).

The update receives the time-major ``[T, N]`` batch. For a feed-forward policy it
flattens it and the minibatches shuffle independent transitions; for a recurrent one
they are groups of whole env sequences (each epoch reshuffles the envs), replayed from
the carry each env had at the start of the rollout.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purejaxrl_ppo.core.algos import register_algorithm
from purejaxrl_ppo.core.algos.base import Algorithm, as_loss_batch, batch_policy, for_update, minibatch_epochs
from purejaxrl_ppo.core.algos.ppo.config import PPOConfig
from purejaxrl_ppo.core.algos.ppo.loss import POLICY_OBJECTIVES, adapt_kl_coef, policy_kl, ppo_loss
from purejaxrl_ppo.core.networks import DistParams, Params, entropy_noise
from purejaxrl_ppo.core.types import UpdateBatch, swap_time_env


#: Folded into the update's key to draw the sampled-entropy noise (tanh-squashed policies only).
ENTROPY_KEY_SALT = 0x454E5452  # "ENTR"


@struct.dataclass
class PPOState:
    """Actor and critic parameters, their joint Adam state, and the KL coefficient.

    kl_coef: float32 scalar β of the KL-penalty objectives (constant for
    ``kl_fixed``, adapted after each update for ``kl_adaptive``, unused otherwise).
    """

    params: Params
    opt_state: optax.OptState
    kl_coef: jax.Array


@register_algorithm
@dataclasses.dataclass(frozen=True)
class PPO(Algorithm):
    """PPO as a pluggable update: ``init(key) -> PPOState``, ``update(state, batch, key)``."""

    config: PPOConfig

    config_class: ClassVar[type[PPOConfig]] = PPOConfig
    brax_defaults: ClassVar[dict] = {"update_epochs": 4, "num_minibatches": 8, "learning_rate": 3e-4}
    supports_recurrent: ClassVar[bool] = True

    @classmethod
    def update_matmul_flops(cls, config: PPOConfig, actor: float, critic: float) -> float:
        """``update_epochs`` × (forward + backward) of actor and critic per transition."""
        return config.update_epochs * 3 * (actor + critic)

    def remaining_fraction(self, count: jax.Array) -> jax.Array:
        """``1 - k / num_updates`` for the update ``k = count // (update_epochs · num_minibatches)`` that
        optimiser step ``count`` belongs to: 1 at the first update, 1/num_updates at the last."""
        cfg = self.config
        steps_per_update = cfg.update_epochs * cfg.num_minibatches
        return 1.0 - (count // steps_per_update) / cfg.num_updates

    def learning_rate(self, count: jax.Array) -> jax.Array:
        """Adam step size after ``count`` optimiser steps (linear annealing to 0 if enabled)."""
        cfg = self.config
        if not cfg.anneal_lr:
            return jnp.asarray(cfg.learning_rate, jnp.float32)
        return cfg.learning_rate * self.remaining_fraction(count)

    def clip_eps(self, opt_state: optax.OptState) -> float | jax.Array:
        """The ε of the update starting from ``opt_state``: ``clip_eps``, or with ``anneal_clip_eps``
        ``clip_eps · (1 - k / num_updates)`` at update ``k``, the fraction the learning rate is annealed by
        (SB3's ``lin_`` clip range, RL-Zoo ``clip_range: lin_X``). The count is the schedule's
        (:meth:`optimizer_steps`), so ε stays constant within an update."""
        cfg = self.config
        if not cfg.anneal_clip_eps:
            return cfg.clip_eps
        return cfg.clip_eps * self.remaining_fraction(optimizer_steps(opt_state))

    def optimizer(self) -> optax.GradientTransformation:
        # optax.flatten runs Adam on one concatenated vector instead of a dozen small
        # leaves: fewer kernels per step (faster on CPU, shorter compile), same maths.
        inner = optax.chain(
            optax.clip_by_global_norm(self.config.max_grad_norm),
            optax.adam(self.learning_rate, eps=1e-5),
        )
        return optax.flatten(inner)

    def init(self, key: jax.Array) -> PPOState:
        params = self.network.init(key)
        kl_coef = jnp.asarray(self.config.kl_coef, jnp.float32)
        return PPOState(params, self.optimizer().init(params), kl_coef)

    def update(self, state: PPOState, batch: UpdateBatch, key: jax.Array) -> tuple[PPOState, dict[str, jax.Array]]:
        """``update_epochs`` passes of ``num_minibatches`` Adam steps on the PPO loss.

        ``batch`` is time-major ``[T, N]``; it is flattened into ``[T·N]`` transitions, or for a
        recurrent policy kept as sequences and minibatched over envs (:func:`for_update`).
        For the KL objectives the old policy's distribution parameters are
        computed once on the whole batch (the actor has not moved since
        the rollout) and shuffled with it. ``kl_adaptive`` then measures
        ``d = E_s[KL[π_old(·|s), π(·|s)]]`` exactly over the batch with the updated
        actor and adapts β (:func:`adapt_kl_coef`); metrics add ``kl`` (that d)
        and ``kl_coef`` (the β this update's loss used). For a tanh-squashed policy each
        transition gets standard-normal noise for the sampled entropy estimate, drawn
        once per update from a key folded out of ``key`` (the minibatch permutations keep theirs).
        With ``anneal_clip_eps`` the loss, its value clipping and ``clip_fraction`` use this update's
        annealed ε (:meth:`clip_eps`), and metrics add it as ``clip_eps``.
        """
        cfg, network = self.config, self.network
        clip_eps = self.clip_eps(state.opt_state)
        sequences = batch
        batch = for_update(network, batch)  # [B] transitions, or [N, T] sequences env-major
        optimizer = self.optimizer()
        grad_fn = jax.grad(ppo_loss, has_aux=True)
        uses_kl = POLICY_OBJECTIVES[cfg.policy_objective].needs_kl
        old_dist_params = jax.lax.stop_gradient(self._policy_in_update_layout(state.params, sequences, batch)) \
            if uses_kl else None

        noise = entropy_noise(network, jax.random.fold_in(key, ENTROPY_KEY_SALT), batch.action.shape)

        def minibatch_step(state: PPOState, data: tuple[UpdateBatch, DistParams | None, jax.Array | None]):
            minibatch, old_dist_minibatch, noise_minibatch = data
            if network.recurrent:  # [n, T] env-major -> [T, n] sequences; per-transition extras flat [T·n]
                minibatch = as_loss_batch(network, minibatch)
                old_dist_minibatch, noise_minibatch = minibatch.flat(swap_time_env((old_dist_minibatch,
                                                                                    noise_minibatch)))
            grads, aux = grad_fn(
                state.params, self.network, minibatch, clip_eps, cfg.vf_coef, cfg.ent_coef,
                cfg.clip_value_loss, cfg.normalize_advantages, cfg.policy_objective, state.kl_coef, old_dist_minibatch,
                noise_minibatch,
            )
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state), aux

        data = (batch, old_dist_params, noise)
        new_state, metrics = minibatch_epochs(minibatch_step, state, data, key, cfg.update_epochs, cfg.num_minibatches)
        if cfg.anneal_clip_eps:
            metrics = {**metrics, "clip_eps": jnp.asarray(clip_eps, jnp.float32)}
        if not uses_kl:
            return new_state, metrics
        flat_batch = sequences if network.recurrent else batch
        new_dist_params = batch_policy(network, new_state.params, flat_batch)
        if network.recurrent:
            old_dist_params = sequences.flat(swap_time_env(old_dist_params))
        kl = policy_kl(network, old_dist_params, new_dist_params).mean()
        if cfg.policy_objective == "kl_adaptive":
            new_state = new_state.replace(kl_coef=adapt_kl_coef(state.kl_coef, kl, cfg.kl_target))
        return new_state, {**metrics, "kl": kl, "kl_coef": state.kl_coef}

    def _policy_in_update_layout(self, params: Params, sequences: UpdateBatch, batch: UpdateBatch) -> DistParams:
        """The policy's distribution parameters laid out like ``batch`` (:func:`for_update`): ``[B]`` or ``[N, T]``."""
        if not self.network.recurrent:
            return batch_policy(self.network, params, batch)
        carry, obs, starts = sequences.initial_carry, sequences.obs, sequences.episode_start
        return swap_time_env(self.network.policy(params, carry, obs, starts)[1])


def optimizer_steps(opt_state: optax.OptState) -> jax.Array:
    """The optimiser steps taken so far: the count of the learning-rate schedule in ``opt_state``
    (:meth:`PPO.optimizer`'s ``optax.scale_by_schedule``), the count :meth:`PPO.learning_rate` reads."""
    counts = [value for path, value in optax.tree_utils.tree_get_all_with_path(opt_state, "count")
              if getattr(path[-1], "tuple_name", None) == "ScaleByScheduleState"]
    if len(counts) != 1:
        raise ValueError(f"expected one learning-rate schedule count in the optimiser state, found {len(counts)}")
    return counts[0]
