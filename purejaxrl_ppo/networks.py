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
class ActorCritic:
    """Separate actor and critic MLPs with params ``{"actor": ..., "critic": ...}``."""

    observation_shape: tuple[int, ...]
    action_space: ActionSpace
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    @property
    def actor(self) -> Actor:
        space = self.action_space
        return Actor(self.hidden_sizes, self.activation, len(self.observation_shape), space.action_dim, space.discrete)

    @property
    def critic(self) -> Critic:
        return Critic(self.hidden_sizes, self.activation, len(self.observation_shape))

    def init(self, key: jax.Array) -> Params:
        """Fresh parameters ``{"actor": ..., "critic": ...}``."""
        actor_key, critic_key = jax.random.split(key)
        obs = jnp.zeros(self.observation_shape, jnp.float32)
        return {"actor": self.actor.init(actor_key, obs), "critic": self.critic.init(critic_key, obs)}

    def policy(self, actor_params: Params, obs: jax.Array) -> DistParams:
        """Distribution parameters for ``obs [..., *observation_shape]``."""
        return self.actor.apply(actor_params, obs)

    def value(self, critic_params: Params, obs: jax.Array) -> jax.Array:
        """State values ``[...]`` for ``obs [..., *observation_shape]``."""
        return self.critic.apply(critic_params, obs)

    def distribution(self, dist_params: DistParams) -> distrax.Distribution:
        """Categorical (discrete) or diagonal Gaussian (continuous) over actions."""
        if self.action_space.discrete:
            return distrax.Categorical(logits=dist_params["logits"])
        return distrax.MultivariateNormalDiag(dist_params["mean"], jnp.exp(dist_params["log_std"]))

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
    """The actor-critic described by ``config.hidden_sizes`` and ``config.activation``."""
    return ActorCritic(observation_shape, action_space, tuple(config.hidden_sizes), config.activation)
