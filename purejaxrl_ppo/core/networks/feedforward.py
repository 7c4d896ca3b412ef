"""Feed-forward actor-critic: separate orthogonally initialised MLPs for the policy and the value.

``ortho_init=False`` initialises every dense layer as PyTorch's ``nn.Linear`` does instead
(:class:`TorchDense`), which is what SB3's ``ActorCriticPolicy(ortho_init=False)`` leaves;
``log_std_init`` sets the Gaussian policy's initial log σ (SB3's ``policy_kwargs: log_std_init``).

Registered as ``policy="mlp"`` (the default). The networks apply to any leading
dimensions (``[T, N, *observation_shape]`` or ``[M, ...]``) and ignore the carry and
the reset flags. A structured or image observation is encoded first
(:mod:`purejaxrl_ppo.core.networks.encoders`: a CNN per image, privileged keys for the
critic only); a flat float32 observation is flattened as it always was.
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
from purejaxrl_ppo.core.networks.encoders import Encoder, Leaf, ObservationLayout, flat_layout, observation_layout

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "swish": nn.swish,
}


class TorchDense(nn.Module):
    """``[..., D_in] -> [..., features]`` initialised as PyTorch's ``nn.Linear``: kernel and bias both
    uniform on ``±1/√D_in``.

    (``kaiming_uniform_(a=√5)`` gives the kernel the bound gain·√(3/D_in) with gain = √(2/(1+5)), i.e.
    1/√D_in, and ``reset_parameters`` draws the bias on the same bound.) Params ``kernel [D_in, features]``
    and ``bias [features]``, as :class:`flax.linen.Dense`.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bound = 1.0 / math.sqrt(x.shape[-1])
        kernel = self.param("kernel", _uniform(bound), (x.shape[-1], self.features))
        bias = self.param("bias", _uniform(bound), (self.features,))
        return x @ kernel + bias


def _uniform(bound: float) -> Callable:
    """Initialiser drawing uniformly on ``[-bound, bound)``."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(width: int, scale: float, ortho_init: bool = True) -> nn.Module:
    """A dense layer of ``width`` outputs: orthogonal kernel with gain ``scale`` and zero bias (``ortho_init``,
    as PPO implementations and SB3's default do), else :class:`TorchDense` (``scale`` unused: SB3 applies its
    gains only with ``ortho_init``)."""
    if ortho_init:
        return nn.Dense(width, kernel_init=nn.initializers.orthogonal(scale))
    return TorchDense(width)


class MLP(nn.Module):
    """Orthogonally initialised MLP: √2 gain on hidden layers, ``out_scale`` on the last.

    ``[..., D_in] -> [..., out_dim]``; biases start at zero. ``ortho_init=False``: every layer a
    :class:`TorchDense` instead.
    """

    hidden_sizes: Sequence[int]
    activation: str
    out_dim: int
    out_scale: float
    ortho_init: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = dense(width, math.sqrt(2.0), self.ortho_init)(x)
            x = act(x)
        return dense(self.out_dim, self.out_scale, self.ortho_init)(x)


def features(obs: Any, obs_ndim: int, leaves: tuple[Leaf, ...], cnn_channels: Sequence[int]) -> jax.Array:
    """``obs -> [..., F]``: a flat observation flattened over its last ``obs_ndim`` axes (no ``leaves``),
    else the :class:`~purejaxrl_ppo.core.networks.encoders.Encoder` of ``leaves`` (called inside a module)."""
    if not leaves:
        return obs.reshape(obs.shape[: obs.ndim - obs_ndim] + (-1,))
    return Encoder(leaves, tuple(cnn_channels))(obs)


class Actor(nn.Module):
    """Policy network: ``obs [..., *obs_shape] -> DistParams`` with leading dims kept.

    Discrete: logits from a head initialised with gain 0.01 (near-uniform start).
    Continuous: means from the same head, plus a state-independent ``log_std``
    parameter vector (initialised to ``log_std_init``, 0 by default, i.e. σ = 1) broadcast to the batch.
    ``leaves``: the observation entries to encode (empty for a flat observation);
    ``ortho_init``: as :class:`MLP`.
    """

    hidden_sizes: Sequence[int]
    activation: str
    obs_ndim: int
    action_dim: int
    discrete: bool
    leaves: tuple[Leaf, ...] = ()
    cnn_channels: Sequence[int] = ()
    log_std_init: float = 0.0
    ortho_init: bool = True

    @nn.compact
    def __call__(self, obs: Any) -> DistParams:
        x = features(obs, self.obs_ndim, self.leaves, self.cnn_channels)
        out = MLP(self.hidden_sizes, self.activation, self.action_dim, 0.01, self.ortho_init)(x)
        if self.discrete:
            return {"logits": out}
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        return {"mean": out, "log_std": jnp.broadcast_to(log_std, out.shape)}


class Critic(nn.Module):
    """Value network: ``obs [..., *obs_shape] -> value [...]`` (head gain 1.0)."""

    hidden_sizes: Sequence[int]
    activation: str
    obs_ndim: int
    leaves: tuple[Leaf, ...] = ()
    cnn_channels: Sequence[int] = ()
    ortho_init: bool = True

    @nn.compact
    def __call__(self, obs: Any) -> jax.Array:
        x = features(obs, self.obs_ndim, self.leaves, self.cnn_channels)
        return MLP(self.hidden_sizes, self.activation, 1, 1.0, self.ortho_init)(x)[..., 0]


@dataclasses.dataclass(frozen=True)
class FeedForward(ActionHead):
    """What the feed-forward networks share: their fields, and no carry (``recurrent`` is False).

    ``layout``: how the observation is read (default: a flat float32 array of ``observation_shape``);
    ``cnn_channels``: the channels of each CNN stage for image entries; ``log_std_init``: the Gaussian
    policy's initial log σ; ``ortho_init``: orthogonal dense layers (else :class:`TorchDense`; CNN
    encoders stay orthogonal).
    """

    observation_shape: tuple[int, ...]
    action_space: ActionSpace
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    action_squash: str = "clip"
    layout: ObservationLayout | None = None
    cnn_channels: tuple[int, ...] = (16, 32, 32)
    log_std_init: float = 0.0
    ortho_init: bool = True

    recurrent = False

    @property
    def observation(self) -> ObservationLayout:
        return self.layout if self.layout is not None else flat_layout(self.observation_shape)

    def _leaves(self, critic: bool) -> tuple[Leaf, ...]:
        """The entries the actor (or critic) encodes; ``()`` for a flat observation (flattened as always)."""
        layout = self.observation
        if layout.flat:
            return ()
        return layout.critic_leaves() if critic else layout.actor_leaves()

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
        return Actor(self.hidden_sizes, self.activation, len(self.observation_shape), space.action_dim, space.discrete,
                     self._leaves(critic=False), self.cnn_channels, self.log_std_init, self.ortho_init)

    @property
    def critic(self) -> Critic:
        return Critic(self.hidden_sizes, self.activation, len(self.observation_shape), self._leaves(critic=True),
                      self.cnn_channels, self.ortho_init)

    def init(self, key: jax.Array) -> Params:
        """Fresh parameters ``{"actor": ..., "critic": ...}``.

        Under ``vmap`` the seeds are initialised one after another (see
        :func:`one_key_at_a_time`), with the same values as a batched call.
        """
        return one_key_at_a_time(self._init)(key)

    def _init(self, key: jax.Array) -> Params:
        actor_key, critic_key = jax.random.split(key)
        obs = self.observation.zeros()
        return {"actor": self.actor.init(actor_key, obs), "critic": self.critic.init(critic_key, obs)}

    def apply(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams, jax.Array]:
        """``obs [T, N, *observation_shape]`` -> ``(carry, dist_params [T, N, ...], value [T, N])``; reset ignored."""
        del reset
        return carry, self.masked(self.actor.apply(params["actor"], obs), obs), self.critic.apply(params["critic"], obs)

    def policy(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams]:
        del reset
        return carry, self.masked(self.actor.apply(params["actor"], obs), obs)

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
    leaves: tuple[Leaf, ...] = ()
    cnn_channels: Sequence[int] = ()
    log_std_init: float = 0.0
    ortho_init: bool = True

    def setup(self):
        self.torso = [dense(w, math.sqrt(2.0), self.ortho_init) for w in self.hidden_sizes]
        self.actor_head = dense(self.action_dim, 0.01, self.ortho_init)
        self.critic_head = dense(1, 1.0, self.ortho_init)
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        if self.leaves:
            self.encoder = Encoder(self.leaves, tuple(self.cnn_channels))

    def features(self, obs: Any) -> jax.Array:
        x = self.encoder(obs) if self.leaves else obs.reshape(obs.shape[: obs.ndim - self.obs_ndim] + (-1,))
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
        if any(not leaf.actor for leaf in self.observation.leaves):
            raise ValueError("a shared torso cannot keep privileged observation entries from the actor: "
                             "use separate actor and critic networks (shared_torso=False) or no privileged_keys")
        return SharedMLP(self.hidden_sizes, self.activation, len(self.observation_shape), space.action_dim,
                         space.discrete, self._leaves(critic=True), self.cnn_channels, self.log_std_init,
                         self.ortho_init)

    def init(self, key: jax.Array) -> Params:
        return one_key_at_a_time(lambda k: self.module.init(k, self.observation.zeros()))(key)

    def apply(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams, jax.Array]:
        del reset
        dist_params, value = self.module.apply(params, obs)
        return carry, self.masked(dist_params, obs), value

    def policy(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams]:
        del reset
        return carry, self.masked(self.module.apply(params, obs, method=SharedMLP.policy), obs)

    def value(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, jax.Array]:
        del reset
        return carry, self.module.apply(params, obs, method=SharedMLP.value)

    @staticmethod
    def _part(params: Params, torso_and: tuple[str, ...]) -> Params:
        return {"params": {k: v for k, v in params["params"].items()
                           if k.startswith("torso_") or k == "encoder" or k in torso_and}}

    def policy_params(self, params: Params) -> Params:
        return self._part(params, ("actor_head", "log_std"))

    def with_policy_params(self, params: Params, policy_params: Params) -> Params:
        return {"params": {**params["params"], **policy_params["params"]}}

    def value_params(self, params: Params) -> Params:
        return self._part(params, ("critic_head",))

    def with_value_params(self, params: Params, value_params: Params) -> Params:
        return {"params": {**params["params"], **value_params["params"]}}


def layout_from_config(config: Any, observation: Any) -> ObservationLayout:
    """The :class:`ObservationLayout` of ``observation`` (a spec or a flat shape) under ``config.torso`` and
    ``config.privileged_keys`` (defaults ``"auto"`` and none for configs without them)."""
    return observation_layout(observation, getattr(config, "torso", "auto"), getattr(config, "privileged_keys", ()))


@register_network("mlp")
def make_mlp(config: Any, action_space: ActionSpace, observation: Any) -> ActorCritic | SharedActorCritic:
    """The actor-critic described by ``config.hidden_sizes``, ``activation``, ``action_squash``, ``log_std_init``
    and ``ortho_init``: separate actor and critic MLPs, or one torso under both heads with ``config.shared_torso``.
    ``observation``: the env's observation spec (or a flat shape), read as :func:`layout_from_config` says."""
    cls = SharedActorCritic if getattr(config, "shared_torso", False) else ActorCritic
    layout = layout_from_config(config, observation)
    return cls(layout.observation_shape, action_space, tuple(config.hidden_sizes), config.activation,
               config.action_squash, layout, tuple(getattr(config, "cnn_channels", (16, 32, 32))),
               float(getattr(config, "log_std_init", 0.0)), bool(getattr(config, "ortho_init", True)))
