"""Partially observed ("memory") tasks: environments whose observation hides part of the state.

``"CartPole-v1?mask=velocity"`` and ``"Pendulum-v1?mask=velocity"`` are the
gymnax envs with the velocities removed from the observation (the suffix is an
option in the style of Brax names): CartPole keeps the cart position and pole
angle (indices 0 and 2 of ``[x, ẋ, θ, θ̇]``), Pendulum keeps ``cos θ`` and
``sin θ`` (indices 0 and 1 of ``[cos θ, sin θ, θ̇]``). A feedforward policy
then sees one frame of a second-order system; a recurrent one can recover the
velocity from consecutive frames. Rewards, dynamics, episode ends and episode
statistics are those of the unmasked env. :data:`MASKS` is the table; any other
``Env`` can be masked with :class:`ObservationMask` directly.

The other memory task needs no wrapper: gymnax's ``"MemoryChain-bsuite"``
(bsuite's memory chain, 1 context bit, default ``memory_length=5``). The
observation is ``[time remaining, query, context]``: a context of ±1 is shown at
the first step (the reset observation; as in bsuite, each step returns the
observation of the state *before* it, so the first step's observation repeats
it), zeros in between, and the episode ends after ``memory_length + 1 = 6``
steps with reward +1 if the last action equals the context bit, else -1 (0 on
every earlier step). ``terminated`` is set there; the 1000-step time limit is
never reached.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl

import jax
import numpy as np

from purejaxrl_ppo.core.envs.base import StepResult
from purejaxrl_ppo.core.envs.gymnax_env import GymnaxEnv
from purejaxrl_ppo.core.envs.wrappers import Wrapper

#: ``mask`` value -> base env -> the observation indices (last axis) it keeps.
MASKS: dict[str, dict[str, tuple[int, ...]]] = {
    "velocity": {
        "CartPole-v1": (0, 2),  # [x, x_dot, theta, theta_dot] -> [x, theta]
        "Pendulum-v1": (0, 1),  # [cos theta, sin theta, theta_dot] -> [cos theta, sin theta]
    },
}

#: The options a masked name may carry.
OPTIONS = ("mask",)


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    """A parsed ``"<gymnax id>?mask=<value>"`` name."""

    base: str
    mask: str
    keep: tuple[int, ...]


def masked_env_names() -> tuple[str, ...]:
    """Every masked name :data:`MASKS` defines, e.g. ``"CartPole-v1?mask=velocity"``."""
    return tuple(f"{base}?mask={mask}" for mask, table in MASKS.items() for base in table)


def is_masked_name(name: str) -> bool:
    """``name`` carries options (``"<id>?..."``); Brax names are told apart first by the caller."""
    return "?" in name


def parse_masked_name(name: str) -> MaskSpec:
    """Parse ``"<gymnax id>?mask=<value>"``.

    Raises ``ValueError`` naming the bad part and the valid choices.
    """
    base, _, query = name.partition("?")
    bases = sorted({b for table in MASKS.values() for b in table})
    if base not in bases:
        raise ValueError(
            f"no observation mask for {base!r} in {name!r}; masked environments: {', '.join(masked_env_names())}"
        )
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise ValueError(f"cannot parse the options {query!r} in {name!r}; expected {base}?mask=<value>") from None
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in {name!r}; valid options: {', '.join(OPTIONS)}")
    valid = [mask for mask, table in MASKS.items() if base in table]
    mask = options.get("mask")
    if mask not in valid:
        raise ValueError(f"mask must be one of {valid} for {base}, got {mask!r} in {name!r}")
    return MaskSpec(base, mask, MASKS[mask][base])


@dataclasses.dataclass(frozen=True)
class ObservationMask(Wrapper):
    """Keep only the observation entries ``keep`` (indices on the last axis) of any :class:`Env`.

    ``obs`` and ``final_obs`` are masked alike (truncation bootstraps from
    ``final_obs``); the state, rewards, ends and ``info`` pass through unchanged.
    ``observation_shape`` is the inner shape with its last axis cut to ``len(keep)``.
    """

    keep: tuple[int, ...]

    def __post_init__(self):
        size = self.env.observation_shape[-1]
        if not self.keep or any(not 0 <= i < size for i in self.keep):
            raise ValueError(f"keep={self.keep} must be a non-empty set of indices into an observation of {size}")

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self.env.observation_shape[:-1] + (len(self.keep),)

    def mask(self, obs: jax.Array) -> jax.Array:
        """``obs [..., D] -> [..., len(keep)]``."""
        return obs[..., np.asarray(self.keep)]

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset(key)
        return self.mask(obs), state

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepResult:
        result = self.env.step(key, state, action)
        return result._replace(obs=self.mask(result.obs), final_obs=self.mask(result.final_obs))


def make_masked_env(name: str) -> ObservationMask:
    """Build ``"<gymnax id>?mask=<value>"``: the gymnax env behind an :class:`ObservationMask`."""
    spec = parse_masked_name(name)
    return ObservationMask(GymnaxEnv.make(spec.base), spec.keep)
