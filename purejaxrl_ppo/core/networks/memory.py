"""Actor-critics with memory: an observation encoder, a memory core, and actor and critic heads.

A *memory core* is a flax module ``core(carry, x [T, N, E], reset [T, N]) -> (carry, y [T, N, F])``
with ``core.initial_carry(batch_shape)``; it must start from the initial carry wherever
``reset`` is set (an episode starts there). Cores register with :func:`register_core`:
``"gru"`` here, ``"attention"`` in :mod:`purejaxrl_ppo.core.networks.attention`.
:class:`MemoryActorCritic` wires a core into the :class:`~purejaxrl_ppo.core.networks.base.Network`
protocol::

    obs [T, N, *obs_shape] ─encoder MLP (hidden_sizes)─▶ core ─▶ actor head ─▶ dist params
                                                              └▶ critic head ─▶ value

Two layouts (``shared_torso``):

* separate (default): the actor and the critic each have their own encoder and core;
  params ``{"actor": ..., "critic": ...}``, carry ``{"actor": c, "critic": c}``;
* shared: one encoder and core feed both heads; params ``{"params": {"torso", "actor_head",
  "critic_head"}}``, carry ``{"torso": c}``. The policy part is torso + actor head and the
  value part torso + critic head: they overlap, which PPO's joint loss handles and TRPO refuses.

Each head is one hidden layer of ``hidden_sizes[-1]`` units and an output layer (gain 0.01
for the policy, 1.0 for the value), all orthogonally initialised as in the MLP.
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
from purejaxrl_ppo.core.networks.encoders import Leaf, ObservationLayout, flat_layout
from purejaxrl_ppo.core.networks.feedforward import _ACTIVATIONS, features, layout_from_config

#: Memory cores by name: ``factory(config) -> flax module`` (see the module docstring).
_CORES: dict[str, Callable[[Any], nn.Module]] = {}


def register_core(name: str) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    """Decorator: a memory core factory ``factory(config) -> core module`` under ``name``."""

    def register(factory: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        _CORES[name] = factory
        return factory

    return register


class GRUCore(nn.Module):
    """A GRU over time: ``(carry [N, H], x [T, N, E], reset [T, N]) -> (carry [N, H], y [T, N, H])``.

    The gates of :class:`flax.linen.GRUCell` (Cho et al. 2014, with the reset gate applied
    to the recurrent term of the candidate):

        r = σ(x W_ir + b_ir + h W_hr),   z = σ(x W_iz + b_iz + h W_hz)
        n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn)),   h' = (1 - z) ⊙ n + z ⊙ h

    computed with the three input projections of all T steps as one matmul before the scan
    and the three recurrent ones as one ``[H, 3H]`` matmul per step: on a CPU a step is then
    one small matmul and a few elementwise kernels, not six matmuls. ``y[t]`` is ``h`` after
    step t. The state is zeroed wherever ``reset`` is set, before that step's input is read.
    Initialisation as flax's cell: LeCun-normal input kernels, orthogonal recurrent kernels,
    zero biases.
    """

    hidden_size: int

    def initial_carry(self, batch_shape: tuple[int, ...]) -> jax.Array:
        return jnp.zeros(batch_shape + (self.hidden_size,), jnp.float32)

    @nn.compact
    def __call__(self, carry: jax.Array, x: jax.Array, reset: jax.Array) -> tuple[jax.Array, jax.Array]:
        h_size = self.hidden_size
        w_input = self.param("input_kernel", nn.initializers.lecun_normal(), (x.shape[-1], 3 * h_size))
        b_input = self.param("input_bias", nn.initializers.zeros, (3 * h_size,))
        w_hidden = self.param("recurrent_kernel", _stacked_orthogonal(3), (h_size, 3 * h_size))
        b_hidden_n = self.param("recurrent_bias_n", nn.initializers.zeros, (h_size,))
        projected = x @ w_input + b_input  # [T, N, 3H]: every step's input terms at once

        def step(h: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            x_proj, reset_t = inputs
            h = jnp.where(reset_t[..., None], 0.0, h)
            x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(h @ w_hidden, 3, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * (h_n + b_hidden_n))
            h = (1.0 - z) * n + z * h
            return h, h

        return jax.lax.scan(step, carry, (projected, reset))


def _stacked_orthogonal(blocks: int) -> Callable:
    """Initialiser of an ``[H, blocks·H]`` kernel: ``blocks`` independent orthogonal ``[H, H]`` blocks side by side."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        size = shape[0]
        keys = jax.random.split(key, blocks)
        return jnp.concatenate([nn.initializers.orthogonal()(k, (size, size), dtype) for k in keys], axis=-1)

    return init


@register_core("gru")
def _gru(config: Any) -> GRUCore:
    return GRUCore(config.rnn_hidden_size)


def _dense(width: int, scale: float) -> nn.Dense:
    return nn.Dense(width, kernel_init=nn.initializers.orthogonal(scale))


class Torso(nn.Module):
    """Encoder MLP then the core: ``(carry, obs [T, N, *obs_shape], reset [T, N]) -> (carry, features [T, N, F])``."""

    hidden_sizes: Sequence[int]
    activation: str
    obs_ndim: int
    core: nn.Module
    leaves: tuple[Leaf, ...] = ()
    cnn_channels: Sequence[int] = ()

    @nn.compact
    def __call__(self, carry: Carry, obs: Any, reset: jax.Array) -> tuple[Carry, jax.Array]:
        act = _ACTIVATIONS[self.activation]
        x = features(obs, self.obs_ndim, self.leaves, self.cnn_channels)
        for width in self.hidden_sizes:
            x = act(_dense(width, math.sqrt(2.0))(x))
        return self.core(carry, x, reset)


class PolicyHead(nn.Module):
    """``features [..., F] -> DistParams``: logits, or means plus a state-independent ``log_std``
    (initialised to ``log_std_init``)."""

    width: int
    activation: str
    action_dim: int
    discrete: bool
    log_std_init: float = 0.0

    @nn.compact
    def __call__(self, features: jax.Array) -> DistParams:
        x = _ACTIVATIONS[self.activation](_dense(self.width, math.sqrt(2.0))(features))
        out = _dense(self.action_dim, 0.01)(x)
        if self.discrete:
            return {"logits": out}
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        return {"mean": out, "log_std": jnp.broadcast_to(log_std, out.shape)}


class ValueHead(nn.Module):
    """``features [..., F] -> value [...]``."""

    width: int
    activation: str

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x = _ACTIVATIONS[self.activation](_dense(self.width, math.sqrt(2.0))(features))
        return _dense(1, 1.0)(x)[..., 0]


class Tower(nn.Module):
    """One torso and one head: the actor or the critic of the separate layout."""

    torso: Torso
    head: nn.Module

    def __call__(self, carry: Carry, obs: jax.Array, reset: jax.Array):
        carry, features = self.torso(carry, obs, reset)
        return carry, self.head(features)


class SharedTower(nn.Module):
    """One torso feeding both heads (``shared_torso``); ``policy``/``value`` run one head."""

    torso: Torso
    actor_head: PolicyHead
    critic_head: ValueHead

    def __call__(self, carry: Carry, obs: jax.Array, reset: jax.Array):
        carry, features = self.torso(carry, obs, reset)
        return carry, self.actor_head(features), self.critic_head(features)

    def policy(self, carry: Carry, obs: jax.Array, reset: jax.Array):
        carry, features = self.torso(carry, obs, reset)
        return carry, self.actor_head(features)

    def value(self, carry: Carry, obs: jax.Array, reset: jax.Array):
        carry, features = self.torso(carry, obs, reset)
        return carry, self.critic_head(features)


_POLICY_PART = ("torso", "actor_head")
_VALUE_PART = ("torso", "critic_head")


@dataclasses.dataclass(frozen=True)
class MemoryActorCritic(ActionHead):
    """A :class:`Network` with a memory core (see the module docstring); ``recurrent`` is True.

    ``core`` is an unbound core module (:func:`register_core`); shapes as in the protocol:
    ``obs [T, N, *observation_shape]``, ``reset [T, N]``, carry leaves ``[N, ...]``.
    """

    observation_shape: tuple[int, ...]
    action_space: ActionSpace
    core: nn.Module
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    action_squash: str = "clip"
    shared_torso: bool = False
    layout: ObservationLayout | None = None
    cnn_channels: tuple[int, ...] = (16, 32, 32)
    log_std_init: float = 0.0

    recurrent = True

    def __post_init__(self):
        if self.shared_torso and any(not leaf.actor for leaf in self.observation.leaves):
            raise ValueError("a shared torso cannot keep privileged observation entries from the actor: "
                             "use separate actor and critic networks (shared_torso=False) or no privileged_keys")

    @property
    def observation(self) -> ObservationLayout:
        return self.layout if self.layout is not None else flat_layout(self.observation_shape)

    # ------------------------------------------------------------------ modules
    def _torso(self, critic: bool = False) -> Torso:
        layout = self.observation
        leaves = () if layout.flat else (layout.critic_leaves() if critic else layout.actor_leaves())
        return Torso(self.hidden_sizes, self.activation, len(self.observation_shape), self.core.clone(), leaves,
                     self.cnn_channels)

    def _policy_head(self) -> PolicyHead:
        space = self.action_space
        return PolicyHead(self.hidden_sizes[-1], self.activation, space.action_dim, space.discrete, self.log_std_init)

    def _value_head(self) -> ValueHead:
        return ValueHead(self.hidden_sizes[-1], self.activation)

    @property
    def actor(self) -> Tower:
        return Tower(self._torso(), self._policy_head())

    @property
    def critic(self) -> Tower:
        return Tower(self._torso(critic=True), self._value_head())

    @property
    def shared(self) -> SharedTower:
        return SharedTower(self._torso(critic=True), self._policy_head(), self._value_head())

    # ------------------------------------------------------------------ protocol
    def init(self, key: jax.Array) -> Params:
        """Fresh parameters (one seed at a time under ``vmap``: :func:`one_key_at_a_time`)."""
        return one_key_at_a_time(self._init)(key)

    def _init(self, key: jax.Array) -> Params:
        obs = self.observation.zeros((1, 1))
        reset = jnp.ones((1, 1), bool)
        carry = self.core.initial_carry((1,))
        if self.shared_torso:
            return self.shared.init(key, carry, obs, reset)
        actor_key, critic_key = jax.random.split(key)
        return {"actor": self.actor.init(actor_key, carry, obs, reset),
                "critic": self.critic.init(critic_key, carry, obs, reset)}

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Carry:
        """The core's initial carry, once per torso: ``{"torso": c}`` or ``{"actor": c, "critic": c}``."""
        carry = self.core.initial_carry(tuple(batch_shape))
        return {"torso": carry} if self.shared_torso else {"actor": carry, "critic": carry}

    def apply(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams, jax.Array]:
        if self.shared_torso:
            torso, dist_params, value = self.shared.apply(params, carry["torso"], obs, reset)
            return {"torso": torso}, self.masked(dist_params, obs), value
        actor_carry, dist_params = self.actor.apply(params["actor"], carry["actor"], obs, reset)
        critic_carry, value = self.critic.apply(params["critic"], carry["critic"], obs, reset)
        return {"actor": actor_carry, "critic": critic_carry}, self.masked(dist_params, obs), value

    def policy(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, DistParams]:
        """The policy alone; the returned carry advances only the policy's part (the critic's is kept)."""
        if self.shared_torso:
            torso, dist_params = self.shared.apply(params, carry["torso"], obs, reset, method=SharedTower.policy)
            return {"torso": torso}, self.masked(dist_params, obs)
        actor_carry, dist_params = self.actor.apply(params["actor"], carry["actor"], obs, reset)
        return {**carry, "actor": actor_carry}, self.masked(dist_params, obs)

    def value(self, params: Params, carry: Carry, obs: jax.Array, reset: jax.Array) -> tuple[Carry, jax.Array]:
        """The value alone; the returned carry advances only the critic's part (the policy's is kept)."""
        if self.shared_torso:
            torso, value = self.shared.apply(params, carry["torso"], obs, reset, method=SharedTower.value)
            return {"torso": torso}, value
        critic_carry, value = self.critic.apply(params["critic"], carry["critic"], obs, reset)
        return {**carry, "critic": critic_carry}, value

    def policy_params(self, params: Params) -> Params:
        if self.shared_torso:
            return {"params": {k: params["params"][k] for k in _POLICY_PART}}
        return params["actor"]

    def with_policy_params(self, params: Params, policy_params: Params) -> Params:
        if self.shared_torso:
            return {"params": {**params["params"], **policy_params["params"]}}
        return {**params, "actor": policy_params}

    def value_params(self, params: Params) -> Params:
        if self.shared_torso:
            return {"params": {k: params["params"][k] for k in _VALUE_PART}}
        return params["critic"]

    def with_value_params(self, params: Params, value_params: Params) -> Params:
        if self.shared_torso:
            return {"params": {**params["params"], **value_params["params"]}}
        return {**params, "critic": value_params}


def make_memory_network(config: Any, action_space: ActionSpace, observation: Any, core: str) -> MemoryActorCritic:
    """The :class:`MemoryActorCritic` with core ``core`` built from ``config`` (sizes, activation, layout);
    ``observation``: the env's observation spec or a flat shape (:func:`layout_from_config`)."""
    layout = layout_from_config(config, observation)
    return MemoryActorCritic(
        layout.observation_shape, action_space, _CORES[core](config), tuple(config.hidden_sizes), config.activation,
        config.action_squash, config.shared_torso, layout, tuple(getattr(config, "cnn_channels", (16, 32, 32))),
        float(getattr(config, "log_std_init", 0.0)),
    )


@register_network("gru", recurrent=True)
def make_gru(config: Any, action_space: ActionSpace, observation_shape: tuple[int, ...]) -> MemoryActorCritic:
    """Encoder MLP → GRU of ``config.rnn_hidden_size`` → heads (separate or ``shared_torso``)."""
    return make_memory_network(config, action_space, observation_shape, "gru")
