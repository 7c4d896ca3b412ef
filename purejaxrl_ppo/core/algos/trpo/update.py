"""The TRPO update: natural-gradient step under a KL trust region, then a critic fit.

Schulman et al. 2015, "Trust Region Policy Optimization", Section 6 and
Appendix C: maximise the importance-weighted surrogate L(θ) subject to
mean KL(π_old ‖ π_θ) ≤ δ by (1) solving F s = g with conjugate gradient, where
F is the Fisher information and g = ∇L (:mod:`~purejaxrl_ppo.core.algos.natural_gradient`), (2) scaling s to
the KL boundary, β = √(2δ / sᵀF s), and (3) backtracking until the KL bound holds and
the surrogate improves. The critic is fitted separately with Adam.

θ is the policy part of the network's parameters (``network.policy_params``); the
critic fit moves the value part (``network.value_params``). The update receives the
time-major ``[T, N]`` batch and flattens it into independent transitions; for a recurrent
policy it keeps the sequences: the surrogate, the mean KL and the Fisher-vector products
run through the unrolled recurrence from each env's initial carry (jvp/vjp through the
scan), the Fisher on a random 1/k of the envs, and the critic's minibatches are groups of
whole env sequences.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purejaxrl_ppo.core.algos import losses, register_algorithm
from purejaxrl_ppo.core.algos.base import (
    Algorithm,
    as_loss_batch,
    batch_value,
    flat_fields,
    for_update,
    minibatch_epochs,
    normalize,
    policy_of,
    select_envs,
)
from purejaxrl_ppo.core.algos.trpo.config import TRPOConfig
from purejaxrl_ppo.core.algos.natural_gradient import make_fisher_vector_product, trust_region_step
from purejaxrl_ppo.core.networks import DistParams, Network, Params, entropy, entropy_noise, value_on_transitions
from purejaxrl_ppo.core.types import UpdateBatch


# ----------------------------------------------------------------------------- the Fisher's sample
#: Folded into the update's key to draw the Fisher's transitions.
FISHER_KEY_SALT = 0x46495348  # "FISH"
#: Folded into the policy step's key to draw the sampled-entropy noise (tanh-squashed policies only).
ENTROPY_KEY_SALT = 1


def fisher_sample(key: jax.Array, batch_size: int, subsample: int) -> jax.Array:
    """Indices ``[batch_size // subsample]`` of the transitions the Fisher is estimated on, sorted.

    A uniformly random subset without replacement, drawn afresh every update, so every env
    and every time step can enter. (Taking every ``subsample``-th row of the flattened
    time-major batch, as before 0.2, meant that with ``num_envs`` a multiple of
    ``subsample`` only envs 0, k, 2k, ... ever entered the Fisher.) ``subsample == 1``
    takes every transition.
    """
    if subsample == 1:
        return jnp.arange(batch_size)
    return jnp.sort(jax.random.choice(key, batch_size, (batch_size // subsample,), replace=False))


def fisher_sequences(key: jax.Array, batch: UpdateBatch, subsample: int) -> UpdateBatch:
    """A recurrent policy's Fisher batch: the whole sequences of a random ``max(1, N // subsample)`` envs."""
    num_envs = batch.episode_start.shape[1]
    if subsample == 1:
        return batch
    count = max(1, num_envs // subsample)
    return select_envs(batch, jnp.sort(jax.random.choice(key, num_envs, (count,), replace=False)))


# ----------------------------------------------------------------------------- surrogate and KL
def surrogate(
    network: Network,
    params: Params,
    obs: jax.Array | UpdateBatch,
    action: jax.Array,
    old_log_prob: jax.Array,
    advantage: jax.Array,
    ent_coef: float | jax.Array,
    entropy_noise: jax.Array | None = None,
) -> jax.Array:
    """``L(θ) = E[π_θ(a|s)/π_old(a|s) · A] + ent_coef · E[H(π_θ(·|s))]`` over ``[B]`` samples.

    ``obs``: ``[B, *obs_shape]``, or a time-major sequence :class:`UpdateBatch` (recurrent policy,
    B = T·N); ``action``, ``old_log_prob``, ``advantage`` are ``[B]`` (flattened time-major).

    H is exact, or for a tanh-squashed policy the one-sample estimate with ``entropy_noise [B, A]``
    (the same noise for every evaluation within an update, so the line search compares like with like).
    """
    dist = network.distribution(policy_of(network, params, obs))
    ratio = jnp.exp(dist.log_prob(action) - old_log_prob)
    return losses.importance_weighted_advantage(ratio, advantage).mean() + ent_coef * entropy(dist, entropy_noise).mean()


def mean_kl(network: Network, old_dist_params: DistParams, params: Params, obs: jax.Array | UpdateBatch) -> jax.Array:
    """``E_s[KL(π_old(·|s) ‖ π_θ(·|s))]`` over ``obs [B, *obs_shape]`` (or a sequence batch, as :func:`surrogate`)."""
    new_dist_params = policy_of(network, params, obs)
    return network.distribution(old_dist_params).kl_divergence(network.distribution(new_dist_params)).mean()


# ----------------------------------------------------------------------------- the update
@struct.dataclass
class TRPOState:
    """Actor and critic parameters and the critic's Adam state."""

    params: Params
    critic_opt_state: optax.OptState


@register_algorithm
@dataclasses.dataclass(frozen=True)
class TRPO(Algorithm):
    """TRPO as a pluggable update: ``init(key) -> TRPOState``, ``update(state, batch, key)``."""

    config: TRPOConfig

    config_class: ClassVar[type[TRPOConfig]] = TRPOConfig
    brax_defaults: ClassVar[dict] = {"max_kl": 0.02, "critic_minibatches": 8}
    supports_recurrent: ClassVar[bool] = True

    @classmethod
    def update_matmul_flops(cls, config: TRPOConfig, actor: float, critic: float) -> float:
        """Per transition: the old policy (1 actor forward), the surrogate's gradient (3), one line-search
        trial (1; more trials add 1 each, so a lower bound), ``cg_iters + 1`` Fisher-vector products
        (a JVP and a VJP, 4 forwards) plus the linearisation (2) on the Fisher's share of the samples,
        and ``critic_epochs`` × 3 critic forwards."""
        fisher = ((config.cg_iters + 1) * 4 + 2) * actor / config.fisher_subsample
        return (1 + 3 + 1) * actor + fisher + config.critic_epochs * 3 * critic

    def critic_optimizer(self) -> optax.GradientTransformation:
        return optax.flatten(optax.adam(self.config.critic_learning_rate, eps=1e-5))  # one vector: fewer kernels

    def init(self, key: jax.Array) -> TRPOState:
        params = self.network.init(key)
        return TRPOState(params, self.critic_optimizer().init(self.network.value_params(params)))

    def policy_step(self, params: Params, batch: UpdateBatch, key: jax.Array) -> tuple[Params, dict[str, jax.Array]]:
        """One natural-gradient step with backtracking line search on ``[B]`` transitions (or sequences).

        ``key`` draws the Fisher's transitions (:func:`fisher_sample`) and, folded, the sampled-entropy
        noise of a tanh-squashed policy. Returns the new policy
        part θ' of ``params`` and the step's metrics.
        """
        cfg, network = self.config, self.network
        states = batch if network.recurrent else batch.obs  # what the policy is evaluated on
        flat = flat_fields(batch)
        noise = entropy_noise(network, jax.random.fold_in(key, ENTROPY_KEY_SALT), flat.action.shape)
        actor_params = network.policy_params(params)
        old_dist_params = jax.lax.stop_gradient(policy_of(network, params, states))
        old_dist = network.distribution(old_dist_params)
        old_log_prob = old_dist.log_prob(flat.action)
        advantage = normalize(flat.advantage) if cfg.normalize_advantages else flat.advantage

        def objective(theta: Params) -> jax.Array:
            full = network.with_policy_params(params, theta)
            return surrogate(network, full, states, flat.action, old_log_prob, advantage, cfg.ent_coef, noise)

        old_objective, gradient = jax.value_and_grad(objective)(actor_params)
        if network.recurrent:
            fisher_states = fisher_sequences(key, batch, cfg.fisher_subsample)
        else:
            rows = fisher_sample(key, flat.advantage.shape[0], cfg.fisher_subsample)
            fisher_states = jax.tree_util.tree_map(lambda x: x[rows], states)
        fvp = make_fisher_vector_product(network, params, fisher_states, cfg.cg_damping)

        def kl_from_old(theta: Params) -> jax.Array:
            return mean_kl(network, old_dist_params, network.with_policy_params(params, theta), states)

        step = trust_region_step(objective, kl_from_old, actor_params, old_objective, gradient, fvp, cfg.max_kl,
                                 cfg.cg_iters, cfg.line_search_steps, cfg.backtrack_coef)
        return step.theta, {**step.metrics(), "entropy": entropy(old_dist, noise).mean()}

    def critic_fit(
        self, params: Params, opt_state: optax.OptState, batch: UpdateBatch, key: jax.Array
    ) -> tuple[tuple[Params, optax.OptState], dict[str, jax.Array]]:
        """``critic_epochs`` × ``critic_minibatches`` Adam steps on ½ E[(V - target)²].

        Minibatches of transitions, or for a recurrent policy of whole env sequences.
        Moves the value part of ``params``; returns ``((value part, Adam state), metrics)``.
        """
        cfg, network = self.config, self.network
        critic_params = network.value_params(params)
        optimizer = self.critic_optimizer()

        def value_and_target(critic: Params, minibatch) -> tuple[jax.Array, jax.Array]:
            full = network.with_value_params(params, critic)
            if network.recurrent:
                sequences = as_loss_batch(network, minibatch)
                return batch_value(network, full, sequences), sequences.flat(sequences.target)
            obs, target = minibatch
            return value_on_transitions(network, full, obs), target

        def loss(critic: Params, minibatch) -> jax.Array:
            value, target = value_and_target(critic, minibatch)
            return 0.5 * jnp.square(value - target).mean()

        def step(carry, minibatch):
            critic, opt_state = carry
            value_loss, grads = jax.value_and_grad(loss)(critic, minibatch)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(critic, updates), opt_state), {"value_loss": value_loss}

        data = for_update(network, batch) if network.recurrent else (batch.obs, batch.target)
        return minibatch_epochs(step, (critic_params, opt_state), data, key, cfg.critic_epochs, cfg.critic_minibatches)

    def update(self, state: TRPOState, batch: UpdateBatch, key: jax.Array) -> tuple[TRPOState, dict[str, jax.Array]]:
        """Natural-gradient policy step, then the critic fit, on the same ``[T, N]`` rollout (flattened unless
        the policy is recurrent)."""
        if not self.network.recurrent:
            batch = batch.flatten()
        # The Fisher's sample gets a key of its own (folded in), so the critic's minibatches keep theirs.
        actor_params, policy_metrics = self.policy_step(state.params, batch, jax.random.fold_in(key, FISHER_KEY_SALT))
        (critic_params, opt_state), critic_metrics = self.critic_fit(state.params, state.critic_opt_state, batch, key)
        params = self.network.with_value_params(self.network.with_policy_params(state.params, actor_params), critic_params)
        return TRPOState(params, opt_state), {**policy_metrics, **critic_metrics}
