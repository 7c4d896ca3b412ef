"""The network protocol every policy implements, and the action distributions they share.

A network maps time-major observations to *distribution parameters* (a dict pytree:
``{"logits": [..., A]}`` for discrete actions, ``{"mean": [..., A], "log_std": [..., A]}``
for continuous ones) and state values, threading a recurrent ``carry`` that resets where
an episode starts. The rollout, the bootstrap values, every algorithm's loss and the
evaluation call a network only through :class:`Network`; feed-forward networks ignore
the carry and the reset flags.

Keeping the distribution parameters explicit lets TRPO form Fisher-vector products as
Jᵀ M J through them (:func:`~purejaxrl_ppo.core.algos.natural_gradient.make_fisher_vector_product`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol, Sequence

import distrax
import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ACTION_MASK, ActionSpace

Params = Any
Carry = Any
DistParams = dict[str, jax.Array]


class Network(Protocol):
    """What the rollout, the algorithms and the evaluation need of a policy.

    Shapes: ``obs [T, N, *observation_shape]``, ``reset [T, N]`` bool (``reset[t, n]``: the
    observation ``obs[t, n]`` begins an episode, so a recurrent network starts from its
    initial carry there), ``carry``: a pytree with leading ``[N]`` (``()`` when feed-forward).
    """

    #: True when the outputs depend on earlier observations through the carry.
    recurrent: bool

    def init(self, key: jax.Array) -> Params:
        """Fresh parameters (a pytree)."""

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Carry:
        """The carry at the start of an episode for ``batch_shape`` envs."""

    def apply(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams, jax.Array]:
        """``(carry after the last step, dist_params [T, N, ...], value [T, N])``."""

    def policy(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams]:
        """The policy head alone: ``(carry, dist_params [T, N, ...])``."""

    def value(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, jax.Array]:
        """The value head alone: ``(carry, value [T, N])``."""

    def policy_params(self, params: Params) -> Params:
        """The part of ``params`` the policy depends on (TRPO's natural gradient acts on it)."""

    def with_policy_params(self, params: Params, policy_params: Params) -> Params:
        """``params`` with the policy part replaced."""

    def value_params(self, params: Params) -> Params:
        """The part of ``params`` the value head depends on (fitted by TRPO's critic regression)."""

    def with_value_params(self, params: Params, value_params: Params) -> Params:
        """``params`` with the value part replaced."""

    def distribution(self, dist_params: DistParams) -> Any:
        """The action distribution (``log_prob``, ``sample_and_log_prob``, ``entropy``, ``kl_divergence``)."""

    def env_action(self, action: jax.Array) -> jax.Array:
        """The in-bounds action the environment receives for a sampled ``action``."""

    def deterministic_action(self, dist_params: DistParams) -> jax.Array:
        """The greedy action, in sampled-action space."""

    #: True when the entropy is estimated from noise (the losses then draw it: :func:`entropy_noise`).
    entropy_is_sampled: bool


def one_key_at_a_time(fn: Callable[[jax.Array], Any]) -> Callable[[jax.Array], Any]:
    """``fn(key)`` that, under ``vmap`` over keys, runs as a ``lax.map`` (one key per iteration).

    Orthogonal initialisation is a QR decomposition; vmapped over many seeds,
    jaxlib's CPU LAPACK kernel (``orgqr``) splits the batch over XLA's thread
    pool, and with jax 0.10.2 two such kernels running at once deadlocked
    (measured: the 256-seed CartPole PPO program hung at 0% CPU with both pool
    threads in ``ParallelBatchMap`` waiting on each other, XLA:CPU workaround
    flag set). One QR per iteration never takes that path. It costs only the
    initialisation's time and gives the same values: each matrix is factorised
    by the same LAPACK routine either way.
    """
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def _rule(axis_size: int, in_batched: Sequence[bool], key: jax.Array):
        del axis_size
        if not in_batched[0]:
            out = wrapped(key)
            return out, jax.tree_util.tree_map(lambda _: False, out)
        out = jax.lax.map(wrapped, key)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return wrapped


def _log1m_tanh_sq(u: jax.Array) -> jax.Array:
    """log(1 - tanh²(u)) = 2 (log 2 - u - softplus(-2u)), stable for large |u|."""
    return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


class TanhGaussian:
    """A diagonal Gaussian over u pushed through a = low + (tanh(u) + 1)(high - low)/2.

    Samples and log-probs are *indexed by the pre-squash u* (what the rollout
    stores as ``action``): ``log_prob(u)`` is the density of the env action
    a = f(u), log N(u; μ, σ) - Σᵢ log|f'(uᵢ)| with f'(u) = (high - low)/2 · (1 - tanh²u).
    Storing u instead of a avoids atanh(±1) for saturated actions. The
    Jacobian term does not depend on θ, so probability ratios, and the KL
    (invariant under a bijection), equal those of the Gaussian.

    The entropy H[a] = H[u] + E[Σᵢ log|f'(uᵢ)|] has no closed form. ``entropy(noise)``
    is the one-sample reparameterised estimate H[u] + Σᵢ log|f'(μᵢ + σᵢ εᵢ)| with
    ``noise`` ε ~ N(0, I) (unbiased, differentiable in μ and σ, as Brax's tanh-Gaussian
    entropy); the losses draw ε per transition. ``entropy()`` without noise is the
    first-order estimate at the mean, H[u] + Σᵢ log|f'(μᵢ)|: deterministic but biased
    (at μ 0.7, σ 0.5 on [-1, 1]: 0.271 nats against the true 0.113).
    """

    def __init__(self, mean: jax.Array, log_std: jax.Array, low: jax.Array, high: jax.Array):
        self.gaussian = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
        self.mean, self.log_std, self.low, self.high = mean, log_std, low, high

    def log_det_jacobian(self, u: jax.Array) -> jax.Array:
        """Σᵢ log|f'(uᵢ)| over the last axis."""
        return (jnp.log((self.high - self.low) / 2.0) + _log1m_tanh_sq(u)).sum(-1)

    def squash(self, u: jax.Array) -> jax.Array:
        return self.low + (jnp.tanh(u) + 1.0) * (self.high - self.low) / 2.0

    def sample_and_log_prob(self, seed: jax.Array) -> tuple[jax.Array, jax.Array]:
        u, log_prob = self.gaussian.sample_and_log_prob(seed=seed)
        return u, log_prob - self.log_det_jacobian(u)

    def log_prob(self, u: jax.Array) -> jax.Array:
        return self.gaussian.log_prob(u) - self.log_det_jacobian(u)

    def entropy(self, noise: jax.Array | None = None) -> jax.Array:
        """``[...]``: the sampled estimate with ``noise [..., A]`` ~ N(0, I), else the estimate at the mean."""
        u = self.mean if noise is None else self.mean + jnp.exp(self.log_std) * noise
        return self.gaussian.entropy() + self.log_det_jacobian(u)

    def kl_divergence(self, other: "TanhGaussian") -> jax.Array:
        return self.gaussian.kl_divergence(other.gaussian)


#: The logit a masked-out action gets: its probability underflows to exactly 0 while every log-probability,
#: entropy and KL term stays finite (0 · finite = 0; -inf would give 0 · -inf = NaN in the entropy).
MASKED_LOGIT = -1e9


class MultiCategorical:
    """Independent categoricals, one per factor of a multi-discrete action (logits concatenated).

    ``logits [..., sum(nvec)]``; actions int32 ``[..., K]`` with ``K = len(nvec)``. The joint
    log-probability, entropy and KL are sums over the factors (the factors are independent given
    the state), so TRPO's mean KL and its Fisher-vector product are sums too.
    """

    def __init__(self, logits: jax.Array, nvec: tuple[int, ...]):
        self.nvec = tuple(nvec)
        bounds = [sum(self.nvec[:k]) for k in range(len(self.nvec) + 1)]
        self.factors = [distrax.Categorical(logits=logits[..., lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def log_prob(self, action: jax.Array) -> jax.Array:
        return sum(f.log_prob(action[..., k]) for k, f in enumerate(self.factors))

    def sample_and_log_prob(self, seed: jax.Array) -> tuple[jax.Array, jax.Array]:
        keys = jax.random.split(seed, len(self.factors))
        draws = [f.sample_and_log_prob(seed=k) for f, k in zip(self.factors, keys)]
        return jnp.stack([a for a, _ in draws], axis=-1), sum(lp for _, lp in draws)

    def entropy(self) -> jax.Array:
        return sum(f.entropy() for f in self.factors)

    def kl_divergence(self, other: "MultiCategorical") -> jax.Array:
        return sum(f.kl_divergence(g) for f, g in zip(self.factors, other.factors))

    def mode(self) -> jax.Array:
        return jnp.stack([jnp.argmax(f.logits, axis=-1) for f in self.factors], axis=-1)


def mask_logits(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """``logits [..., A]`` with the actions where ``mask [..., A]`` is False set to :data:`MASKED_LOGIT`."""
    return jnp.where(mask, logits, MASKED_LOGIT)


def no_valid_action(space: ActionSpace, mask: jax.Array) -> jax.Array:
    """``[...]`` bool: the state allows no action (in some factor, for a multi-discrete space)."""
    if not space.nvec:
        return ~mask.any(-1)
    bounds = [sum(space.nvec[:k]) for k in range(len(space.nvec) + 1)]
    empty = [~mask[..., lo:hi].any(-1) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return jnp.stack(empty, -1).any(-1)


class ActionHead:
    """Mixin for every network: the action distribution and how actions reach the env.

    A subclass provides ``action_space`` (:class:`ActionSpace`) and ``action_squash``
    (continuous actions only), which says how a Gaussian sample u becomes an in-bounds env
    action (:meth:`env_action`): ``"clip"`` clips it (log-probs are of the unclipped u, as in
    PPO's reference implementations); ``"tanh"`` squashes it with :class:`TanhGaussian`'s
    log-prob correction.
    """

    action_space: ActionSpace
    action_squash: str

    def _bounds(self) -> tuple[jax.Array, jax.Array]:
        return jnp.asarray(self.action_space.low, jnp.float32), jnp.asarray(self.action_space.high, jnp.float32)

    def distribution(self, dist_params: DistParams) -> distrax.Distribution | TanhGaussian | MultiCategorical:
        """Categorical (discrete), :class:`MultiCategorical` (multi-discrete), diagonal Gaussian or
        :class:`TanhGaussian` (continuous)."""
        if self.action_space.multi:
            return MultiCategorical(dist_params["logits"], self.action_space.nvec)
        if self.action_space.discrete:
            return distrax.Categorical(logits=dist_params["logits"])
        if self.action_squash == "tanh":
            return TanhGaussian(dist_params["mean"], dist_params["log_std"], *self._bounds())
        return distrax.MultivariateNormalDiag(dist_params["mean"], jnp.exp(dist_params["log_std"]))

    def env_action(self, action: jax.Array) -> jax.Array:
        """The in-bounds action the env receives for a sampled ``action [..., A]`` (discrete: as is)."""
        if self.action_space.discrete:
            return action
        low, high = self._bounds()
        if self.action_squash == "tanh":
            return low + (jnp.tanh(action) + 1.0) * (high - low) / 2.0
        return jnp.clip(action, low, high)

    def deterministic_action(self, dist_params: DistParams) -> jax.Array:
        """The greedy action as sampled-action space: argmax logits (per factor) or the Gaussian mean."""
        if self.action_space.multi:
            return MultiCategorical(dist_params["logits"], self.action_space.nvec).mode()
        if self.action_space.discrete:
            return jnp.argmax(dist_params["logits"], axis=-1)
        return dist_params["mean"]

    def masked(self, dist_params: DistParams, obs: Any) -> DistParams:
        """``dist_params`` with the logits of actions that ``obs[ACTION_MASK]`` forbids set to :data:`MASKED_LOGIT`
        (unchanged when the action space has no mask): every network's policy output goes through this, so
        sampling, log-probs, entropy and every KL (PPO's, TRPO's and its Fisher) see the masked policy."""
        if not self.action_space.masked:
            return dist_params
        return {**dist_params, "logits": mask_logits(dist_params["logits"], obs[ACTION_MASK])}

    @property
    def entropy_is_sampled(self) -> bool:
        """True when the entropy has no closed form (the tanh squash): losses pass it noise (:func:`entropy`)."""
        return not self.action_space.discrete and self.action_squash == "tanh"


def entropy(dist: Any, noise: jax.Array | None = None) -> jax.Array:
    """Per-state entropy ``[...]``: exact for categorical and Gaussian policies; for the tanh-squashed
    Gaussian the one-sample estimate with ``noise`` (see :class:`TanhGaussian`)."""
    return dist.entropy(noise) if isinstance(dist, TanhGaussian) else dist.entropy()


def entropy_noise(network: Network, key: jax.Array, action_shape: tuple[int, ...]) -> jax.Array | None:
    """Standard-normal noise ``action_shape`` for the sampled entropy, or ``None`` when it is exact."""
    return jax.random.normal(key, action_shape) if network.entropy_is_sampled else None


# ----------------------------------------------------------------------------- calling conventions
# A feed-forward network (``recurrent`` False) applies to any leading dims, so these helpers hand it the
# arrays as they are ([N] or [M] rows): the compiled program then has exactly the shapes of a plain MLP
# call (XLA:CPU picks kernels, and so summation orders, by shape). A recurrent network gets the
# time-major [T, N] form the protocol defines, with T = 1.
def step(network: Network, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array):
    """One time step of ``N`` envs: ``obs [N, ...]``, ``reset [N]`` -> ``(carry, dist_params [N, ...], value [N])``."""
    if not network.recurrent:
        return network.apply(params, carry, obs, reset)
    carry, dist_params, value = network.apply(params, carry, add_time_axis(obs), reset[None])
    return carry, jax.tree_util.tree_map(lambda x: x[0], dist_params), value[0]


def add_time_axis(obs: Any) -> Any:
    """``obs`` (an array or a dict of arrays) with a leading axis of 1 on every leaf."""
    return jax.tree_util.tree_map(lambda x: x[None], obs)


def leading_size(obs: Any) -> int:
    """The size of the leading axis shared by every leaf of ``obs``."""
    return jax.tree_util.tree_leaves(obs)[0].shape[0]


def _fresh(network: Network, obs: Any) -> tuple[Carry, jax.Array]:
    """The initial carry and no-reset flags for ``obs [M, ...]`` seen as one step of ``M`` envs."""
    size = leading_size(obs)
    return network.initial_carry((size,)), jnp.zeros((1, size), bool)


def policy_on_transitions(network: Network, params: Params, obs: jax.Array) -> DistParams:
    """Distribution parameters ``[M, ...]`` of independent transitions ``obs [M, ...]`` (each from a fresh carry)."""
    carry, reset = _fresh(network, obs)
    if not network.recurrent:
        return network.policy(params, carry, obs, reset[0])[1]
    return jax.tree_util.tree_map(lambda x: x[0], network.policy(params, carry, add_time_axis(obs), reset)[1])


def value_on_transitions(network: Network, params: Params, obs: jax.Array) -> jax.Array:
    """Values ``[M]`` of independent transitions ``obs [M, ...]`` (each from a fresh carry)."""
    carry, reset = _fresh(network, obs)
    if not network.recurrent:
        return network.value(params, carry, obs, reset[0])[1]
    return network.value(params, carry, add_time_axis(obs), reset)[1][0]
