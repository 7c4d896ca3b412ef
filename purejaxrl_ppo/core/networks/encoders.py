"""Observation encoders: how a network turns a structured or image observation into one feature vector.

A flat float32 observation (gymnax, Brax) needs no encoder: the networks flatten it
exactly as they always have. Any other observation gets an :class:`Encoder` built
from its :class:`ObservationLayout`: one encoder per key, concatenated in key order.

- vector leaves (float32, any rank but 3): flattened (normalised beforehand where the
  run normalises observations: :func:`purejaxrl_ppo.core.normalization.init_observation_stats`);
- image leaves (rank 3, ``[H, W, C]``): a small IMPALA-style CNN (Espeholt et al. 2018:
  per stage a 3×3 conv, a 3×3 max-pool with stride 2 and two residual blocks); uint8
  pixels are scaled by 1/255, integer grids (symbolic views) are fed as their values;
- the action mask (:data:`~purejaxrl_ppo.core.envs.base.ACTION_MASK`) is not a feature:
  the policy head applies it to the logits;
- privileged keys (``config.privileged_keys``, e.g. MuJoCo Playground's ``privileged_state``)
  are read by the critic only: an asymmetric actor-critic.

Which rank-3 leaves are images (``config.torso``): ``"auto"`` treats a rank-3 leaf as an
image when its dtype is not float32 or the observation is a dict (so gymnax's MinAtar
``[10, 10, 4]`` float grids keep the flattening MLP they always had); ``"cnn"`` treats every
rank-3 leaf as an image; ``"mlp"`` flattens everything.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.envs.base import ACTION_MASK, is_structured

TORSOS = ("auto", "mlp", "cnn")
#: Privileged entries by default (``config.privileged_keys``): MuJoCo Playground's name for the critic's state.
DEFAULT_PRIVILEGED_KEYS = ("privileged_state",)


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One observation entry: its ``key`` (``None`` for a single-array observation), ``shape`` and
    ``dtype`` (a numpy dtype name), its ``kind`` (``"vector"``, ``"image"`` or ``"mask"``) and whether
    the actor reads it (the critic reads every non-mask leaf)."""

    key: str | None
    shape: tuple[int, ...]
    dtype: str
    kind: str
    actor: bool = True


@dataclasses.dataclass(frozen=True)
class ObservationLayout:
    """How the networks read an observation (hashable: it lives in frozen network dataclasses).

    ``leaves``: one :class:`Leaf` per entry, in key order; ``flat``: the observation is one float32
    array read by the original flattening MLP (no encoder, so those networks are unchanged).
    """

    leaves: tuple[Leaf, ...]
    flat: bool

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape of a flat observation (``()`` for a structured one)."""
        return self.leaves[0].shape if self.flat else ()

    def actor_leaves(self) -> tuple[Leaf, ...]:
        return tuple(leaf for leaf in self.leaves if leaf.kind != "mask" and leaf.actor)

    def critic_leaves(self) -> tuple[Leaf, ...]:
        return tuple(leaf for leaf in self.leaves if leaf.kind != "mask")

    def zeros(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """An all-zero observation with leading ``batch_shape`` (an array, or a dict of them)."""
        arrays = {leaf.key: jnp.zeros(tuple(batch_shape) + leaf.shape, leaf.dtype) for leaf in self.leaves}
        return arrays[None] if None in arrays else arrays


def _is_image(shape: tuple[int, ...], dtype: np.dtype, structured: bool, torso: str) -> bool:
    if len(shape) != 3 or torso == "mlp":
        return False
    return torso == "cnn" or structured or dtype != np.float32


def observation_layout(spec: Any, torso: str = "auto", privileged_keys: Sequence[str] = ()) -> ObservationLayout:
    """The :class:`ObservationLayout` of an observation spec (a ``jax.ShapeDtypeStruct``, a dict of
    them, or a plain shape tuple for a flat float32 observation).

    Raises ``ValueError`` for an unknown ``torso`` or a privileged key the observation lacks (other than
    the default :data:`DEFAULT_PRIVILEGED_KEYS`, which most observations lack).
    """
    if torso not in TORSOS:
        raise ValueError(f"torso must be one of {TORSOS}, got {torso!r}")
    if isinstance(spec, (tuple, list)):
        spec = jax.ShapeDtypeStruct(tuple(spec), jnp.float32)
    structured = is_structured(spec)
    entries = sorted(spec.items()) if structured else [(None, spec)]
    privileged = set(privileged_keys)
    missing = sorted(privileged - set(DEFAULT_PRIVILEGED_KEYS) - {key for key, _ in entries})
    if missing:
        keys = sorted(spec) if structured else "none (one array)"
        raise ValueError(f"privileged_keys {missing} are not entries of the observation; its entries: {keys}")
    if ACTION_MASK in privileged:
        raise ValueError(f"{ACTION_MASK!r} cannot be privileged: the policy needs the mask to act")
    leaves = []
    for key, leaf in entries:
        shape, dtype = tuple(int(s) for s in leaf.shape), np.dtype(leaf.dtype)
        if key == ACTION_MASK:
            kind = "mask"
        else:
            kind = "image" if _is_image(shape, dtype, structured, torso) else "vector"
        leaves.append(Leaf(key, shape, dtype.name, kind, actor=key not in privileged))
    flat = not structured and leaves[0].kind == "vector" and leaves[0].dtype == "float32"
    return ObservationLayout(tuple(leaves), flat)


def flat_layout(observation_shape: Sequence[int]) -> ObservationLayout:
    """The layout of a flat float32 observation of ``observation_shape``."""
    return observation_layout(tuple(observation_shape))


class ResidualBlock(nn.Module):
    """relu → conv3×3 → relu → conv3×3, added to the input (IMPALA)."""

    channels: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)))(nn.relu(x))
        y = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)))(nn.relu(y))
        return x + y


class ImpalaCNN(nn.Module):
    """``images [B, H, W, C] float32 -> features [B, F]``: per entry of ``channels`` a 3×3 conv, a 3×3
    max-pool with stride 2 (SAME padding, so any H, W ≥ 1 works) and two residual blocks; then relu
    and flatten."""

    channels: Sequence[int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.channels:
            x = nn.Conv(width, (3, 3), kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)))(x)
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            x = ResidualBlock(width)(x)
            x = ResidualBlock(width)(x)
        x = nn.relu(x)
        return x.reshape(x.shape[0], -1)


class Encoder(nn.Module):
    """``obs (leading dims [...]) -> features [..., F]``: each leaf of ``leaves`` encoded
    (images by an :class:`ImpalaCNN` of ``cnn_channels`` each, vectors flattened) and concatenated."""

    leaves: tuple[Leaf, ...]
    cnn_channels: Sequence[int]

    @nn.compact
    def __call__(self, obs: Any) -> jax.Array:
        features = []
        for leaf in self.leaves:
            x = obs if leaf.key is None else obs[leaf.key]
            lead = x.shape[: x.ndim - len(leaf.shape)]
            if leaf.kind == "image":
                images = x.reshape((-1,) + leaf.shape).astype(jnp.float32)
                if leaf.dtype == "uint8":
                    images = images / 255.0
                x = ImpalaCNN(tuple(self.cnn_channels), name=f"cnn_{leaf.key or 'obs'}")(images)
                features.append(x.reshape(lead + (-1,)))
            else:
                features.append(x.reshape(lead + (-1,)).astype(jnp.float32))
        return features[0] if len(features) == 1 else jnp.concatenate(features, axis=-1)
