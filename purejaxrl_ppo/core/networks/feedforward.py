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
class ActorCritic(ActionHead):
    """Separate actor and critic MLPs with params ``{"actor": ..., "critic": ...}`` (a :class:`Network`)."""

    observation_shape: tuple[int, ...]
    action_space: ActionSpace
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    action_squash: str = "clip"

    recurrent = False

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

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Carry:
        """``()``: a feed-forward network carries nothing."""
        del batch_shape
        return ()

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


@register_network("mlp")
def make_mlp(config: Any, action_space: ActionSpace, observation_shape: tuple[int, ...]) -> ActorCritic:
    """The actor-critic described by ``config.hidden_sizes``, ``activation`` and ``action_squash``."""
    return ActorCritic(
        observation_shape, action_space, tuple(config.hidden_sizes), config.activation, config.action_squash
    )
