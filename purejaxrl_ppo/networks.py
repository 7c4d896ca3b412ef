"""Actor-critic networks and their action distributions.

The actor maps observations to *distribution parameters* (a dict pytree:
``{"logits": [..., A]}`` for discrete actions, ``{"mean": [..., A],
"log_std": [..., A]}`` for continuous ones); :meth:`ActorCritic.distribution`
turns those into a distrax distribution. Keeping the parameters explicit lets
TRPO form Fisher-vector products as Jᵀ M J through them.

Every policy call goes through :meth:`ActorCritic.step`, which carries a
``carry`` (``()`` for these feed-forward networks) and the ``episode_start``
flags, so a recurrent policy can slot in without changing the rollout.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxrl_ppo.envs.base import ActionSpace

Params = Any
DistParams = dict[str, jax.Array]


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

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "swish": nn.swish,
}


class MLP(nn.Module):
    """Orthogonally initialised MLP: √2 gain on hidden layers, ``out_scale`` on the last.

    ``[..., D_in] -> [..., out_dim]``; biases start at zero.
    """

    hidden_sizes: Sequence[int]
    activation: str
    out_dim: int
    out_scale: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = nn.Dense(width, kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)))(x)
            x = act(x)
        return nn.Dense(self.out_dim, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)


class Actor(nn.Module):
    """Policy network: ``obs [..., *obs_shape] -> DistParams`` with leading dims kept.

    Discrete: logits from a head initialised with gain 0.01 (near-uniform start).
    Continuous: means from the same head, plus a state-independent ``log_std``
    parameter vector (initialised to 0, i.e. σ = 1) broadcast to the batch.
    """

    hidden_sizes: Sequence[int]
    activation: str
    obs_ndim: int
    action_dim: int
    discrete: bool

    @nn.compact
    def __call__(self, obs: jax.Array) -> DistParams:
        x = obs.reshape(obs.shape[: obs.ndim - self.obs_ndim] + (-1,))
        out = MLP(self.hidden_sizes, self.activation, self.action_dim, 0.01)(x)
        if self.discrete:
            return {"logits": out}
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return {"mean": out, "log_std": jnp.broadcast_to(log_std, out.shape)}


class Critic(nn.Module):
    """Value network: ``obs [..., *obs_shape] -> value [...]`` (head gain 1.0)."""

    hidden_sizes: Sequence[int]
    activation: str
    obs_ndim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape(obs.shape[: obs.ndim - self.obs_ndim] + (-1,))
        return MLP(self.hidden_sizes, self.activation, 1, 1.0)(x)[..., 0]


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

    ``entropy()`` has no closed form; we use the Gaussian entropy plus the
    log-Jacobian at the mean, H[a] ≈ H[u] + Σᵢ log|f'(μᵢ)| (a deterministic
    first-order estimate of H[u] + E[Σ log|f'(u)|]; it is finite and smooth,
    and smaller than H[u] when the mean saturates).
    """

    def __init__(self, mean: jax.Array, log_std: jax.Array, low: jax.Array, high: jax.Array):
        self.gaussian = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
        self.mean, self.low, self.high = mean, low, high

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

    def entropy(self) -> jax.Array:
        return self.gaussian.entropy() + self.log_det_jacobian(self.mean)

    def kl_divergence(self, other: "TanhGaussian") -> jax.Array:
        return self.gaussian.kl_divergence(other.gaussian)


@dataclasses.dataclass(frozen=True)
class ActorCritic:
    """Separate actor and critic MLPs with params ``{"actor": ..., "critic": ...}``.

    ``action_squash`` (continuous actions only) says how a Gaussian sample u
    becomes an in-bounds env action (:meth:`env_action`): ``"clip"`` clips it
    (log-probs are of the unclipped u, as in PPO's reference implementations);
    ``"tanh"`` squashes it with :class:`TanhGaussian`'s log-prob correction.
    """

    observation_shape: tuple[int, ...]
    action_space: ActionSpace
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    action_squash: str = "clip"

    def _bounds(self) -> tuple[jax.Array, jax.Array]:
        return jnp.asarray(self.action_space.low, jnp.float32), jnp.asarray(self.action_space.high, jnp.float32)

    @property
    def actor(self) -> Actor:
        space = self.action_space
        return Actor(self.hidden_sizes, self.activation, len(self.observation_shape), space.action_dim, space.discrete)

    @property
    def critic(self) -> Critic:
        return Critic(self.hidden_sizes, self.activation, len(self.observation_shape))

    def init(self, key: jax.Array) -> Params:
        """Fresh parameters ``{"actor": ..., "critic": ...}``.

        Under ``vmap`` the seeds are initialised one after another (see
        :func:`one_key_at_a_time`), with the same values as a batched call.
        """
        return one_key_at_a_time(self._init)(key)

    def _init(self, key: jax.Array) -> Params:
        actor_key, critic_key = jax.random.split(key)
        obs = jnp.zeros(self.observation_shape, jnp.float32)
        return {"actor": self.actor.init(actor_key, obs), "critic": self.critic.init(critic_key, obs)}

    def policy(self, actor_params: Params, obs: jax.Array) -> DistParams:
        """Distribution parameters for ``obs [..., *observation_shape]``."""
        return self.actor.apply(actor_params, obs)

    def value(self, critic_params: Params, obs: jax.Array) -> jax.Array:
        """State values ``[...]`` for ``obs [..., *observation_shape]``."""
        return self.critic.apply(critic_params, obs)

    def distribution(self, dist_params: DistParams) -> distrax.Distribution | TanhGaussian:
        """Categorical (discrete), diagonal Gaussian or :class:`TanhGaussian` (continuous)."""
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
        """The greedy action as sampled-action space: argmax logits or the Gaussian mean."""
        if self.action_space.discrete:
            return jnp.argmax(dist_params["logits"], axis=-1)
        return dist_params["mean"]

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Any:
        """Recurrent state for a batch of envs; ``()`` for a feed-forward policy."""
        del batch_shape
        return ()

    def step(
        self, params: Params, carry: Any, obs: jax.Array, episode_start: jax.Array
    ) -> tuple[Any, DistParams, jax.Array]:
        """Acting interface used by the rollout.

        obs: ``[N, *observation_shape]``; episode_start: ``[N]`` bool (the obs is
        the first of an episode, so a recurrent policy resets its carry).
        Returns ``(carry, dist_params [N, ...], value [N])``.
        """
        del episode_start
        return carry, self.policy(params["actor"], obs), self.value(params["critic"], obs)


def make_network(config: Any, action_space: ActionSpace, observation_shape: tuple[int, ...]) -> ActorCritic:
    """The actor-critic described by ``config.hidden_sizes``, ``activation`` and ``action_squash``."""
    return ActorCritic(
        observation_shape, action_space, tuple(config.hidden_sizes), config.activation, config.action_squash
    )
