"""Feed-forward actor-critic: separate orthogonally initialised MLPs for the policy and the value.

Registered as ``policy="mlp"`` (the default). The networks apply to any leading
dimensions (``[T, N, *observation_shape]`` or ``[M, ...]``) and ignore the carry and
the reset flags.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ActionSpace
from purejaxrl_ppo.core.networks import register_network
from purejaxrl_ppo.core.networks.base import ActionHead, Carry, DistParams, Params, one_key_at_a_time

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


@dataclasses.dataclass(frozen=True)
class FeedForward(ActionHead):
    """What the feed-forward networks share: their fields, and no carry (``recurrent`` is False)."""

    observation_shape: tuple[int, ...]
    action_space: ActionSpace
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    action_squash: str = "clip"

    recurrent = False

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Carry:
        """``()``: a feed-forward network carries nothing."""
        del batch_shape
        return ()


@dataclasses.dataclass(frozen=True)
class ActorCritic(FeedForward):
    """Separate actor and critic MLPs with params ``{"actor": ..., "critic": ...}`` (a :class:`Network`)."""

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

    def apply(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams, jax.Array]:
        """``obs [T, N, *observation_shape]`` -> ``(carry, dist_params [T, N, ...], value [T, N])``; reset ignored."""
        del reset
        return carry, self.actor.apply(params["actor"], obs), self.critic.apply(params["critic"], obs)

    def policy(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams]:
        del reset
        return carry, self.actor.apply(params["actor"], obs)

    def value(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, jax.Array]:
        del reset
        return carry, self.critic.apply(params["critic"], obs)

    def policy_params(self, params: Params) -> Params:
        return params["actor"]

    def with_policy_params(self, params: Params, policy_params: Params) -> Params:
        return {**params, "actor": policy_params}

    def value_params(self, params: Params) -> Params:
        return params["critic"]

    def with_value_params(self, params: Params, value_params: Params) -> Params:
        return {**params, "critic": value_params}


class SharedMLP(nn.Module):
    """One MLP torso (``hidden_sizes``) under a policy head (gain 0.01) and a value head (gain 1.0).

    ``obs [..., *obs_shape] -> (DistParams, value [...])``; ``policy``/``value`` run one head.
    """

    hidden_sizes: Sequence[int]
    activation: str
    obs_ndim: int
    action_dim: int
    discrete: bool

    def setup(self):
        layers = [nn.Dense(w, kernel_init=nn.initializers.orthogonal(math.sqrt(2.0))) for w in self.hidden_sizes]
        self.torso = layers
        self.actor_head = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(0.01))
        self.critic_head = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def features(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape(obs.shape[: obs.ndim - self.obs_ndim] + (-1,))
        for layer in self.torso:
            x = _ACTIVATIONS[self.activation](layer(x))
        return x

    def policy(self, obs: jax.Array) -> DistParams:
        out = self.actor_head(self.features(obs))
        if self.discrete:
            return {"logits": out}
        return {"mean": out, "log_std": jnp.broadcast_to(self.log_std, out.shape)}

    def value(self, obs: jax.Array) -> jax.Array:
        return self.critic_head(self.features(obs))[..., 0]

    def __call__(self, obs: jax.Array) -> tuple[DistParams, jax.Array]:
        return self.policy(obs), self.value(obs)


@dataclasses.dataclass(frozen=True)
class SharedActorCritic(FeedForward):
    """An MLP torso shared by the policy and value heads (``shared_torso``), params ``{"params": {...}}``.

    The policy part is the torso and the policy head (and ``log_std``), the value part the torso
    and the value head: they overlap, which PPO's joint loss handles and TRPO refuses.
    """

    @property
    def module(self) -> SharedMLP:
        space = self.action_space
        return SharedMLP(self.hidden_sizes, self.activation, len(self.observation_shape), space.action_dim,
                         space.discrete)

    def init(self, key: jax.Array) -> Params:
        return one_key_at_a_time(lambda k: self.module.init(k, jnp.zeros(self.observation_shape, jnp.float32)))(key)

    def apply(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams, jax.Array]:
        del reset
        dist_params, value = self.module.apply(params, obs)
        return carry, dist_params, value

    def policy(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams]:
        del reset
        return carry, self.module.apply(params, obs, method=SharedMLP.policy)

    def value(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, jax.Array]:
        del reset
        return carry, self.module.apply(params, obs, method=SharedMLP.value)

    @staticmethod
    def _part(params: Params, torso_and: tuple[str, ...]) -> Params:
        return {"params": {k: v for k, v in params["params"].items() if k.startswith("torso_") or k in torso_and}}

    def policy_params(self, params: Params) -> Params:
        return self._part(params, ("actor_head", "log_std"))

    def with_policy_params(self, params: Params, policy_params: Params) -> Params:
        return {"params": {**params["params"], **policy_params["params"]}}

    def value_params(self, params: Params) -> Params:
        return self._part(params, ("critic_head",))

    def with_value_params(self, params: Params, value_params: Params) -> Params:
        return {"params": {**params["params"], **value_params["params"]}}


@register_network("mlp")
def make_mlp(config: Any, action_space: ActionSpace, observation_shape: tuple[int, ...]) -> ActorCritic | SharedActorCritic:
    """The actor-critic described by ``config.hidden_sizes``, ``activation`` and ``action_squash``:
    separate actor and critic MLPs, or one torso under both heads with ``config.shared_torso``."""
    cls = SharedActorCritic if getattr(config, "shared_torso", False) else ActorCritic
    return cls(observation_shape, action_space, tuple(config.hidden_sizes), config.activation, config.action_squash)
