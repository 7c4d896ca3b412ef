"""Acting with a trained policy outside training: one pure, jittable step for every network.

A :class:`Policy` holds a run's config and every seed's :class:`PolicyParams` (the network's
parameters and the observation statistics it was trained with, each leaf with a leading
``[num_seeds]`` axis). Its methods are pure functions of the parameters, so they ``jax.jit``
and ``jax.vmap`` like any JAX function (:func:`purejaxrl_ppo.runs.policy_files.load_run`
builds one from a run directory or an exported file)::

    policy = pjp.load_run("runs/ppo-cartpole")
    params = policy.params_of(0)                                   # seed 0
    action = policy.act(params, obs, key, deterministic=True)      # feed-forward policies

    carry = policy.initial_carry()                                 # any policy, memory ones included
    carry, action = policy.step(params, carry, obs, key, deterministic=True)

One API for feed-forward and memory policies: :meth:`Policy.step` threads a *carry* (the
network's memory: ``()`` for an MLP, the GRU state or the attention window for
``policy="gru"`` / ``"attention"``) and returns the next one with the action;
:meth:`Policy.act` is :meth:`~Policy.step` from the initial carry, which is all a
feed-forward policy needs (a memory policy refuses it: its action depends on the episode so far).

Shapes (``O`` = ``observation_shape``, ``A`` = the action dimension):

* one env: ``obs [*O]`` -> ``action []`` int32 (discrete) or ``[A]`` float32 (continuous);
  ``carry = policy.initial_carry()``;
* ``N`` envs: ``obs [N, *O]`` -> ``action [N]`` or ``[N, A]``; ``carry = policy.initial_carry(N)``;
* ``reset``: optional bool ``[]`` / ``[N]``, True where ``obs`` begins a new episode (the carry
  restarts there, as in training's auto-resetting envs); starting each episode from
  ``initial_carry`` is the same thing.

The action is what the environment receives: with ``deterministic=True`` the argmax
(discrete) or the mean (continuous), mapped by the network's ``env_action`` (clip or tanh
squash), exactly as :func:`~purejaxrl_ppo.core.evaluate.greedy_action` (evaluation) computes
it; with ``deterministic=False`` a sample of the training distribution, mapped the same way
(the rollout's ``sample_and_log_prob``). Observations are normalised inside when the run
trained with ``normalize_observations``. Every seed at once: ``jax.vmap`` over
``policy.params`` (and over per-seed keys).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.core.envs import make_env
from purejaxrl_ppo.core.envs.base import ActionSpace, Env, is_structured, observation_spec
from purejaxrl_ppo.core.networks import Carry, Network, Params, leading_size, make_network, step
from purejaxrl_ppo.core.normalization import RunningMeanStd
from purejaxrl_ppo.core.rollout import policy_input


class PolicyParams(NamedTuple):
    """What one policy acts with (a pytree; :class:`Policy` holds every seed's, leading ``[num_seeds]``).

    network:   the network's parameters (``TrainOutput.params`` of one seed)
    obs_stats: the observation statistics it trained with (``mean``/``var`` ``[*O]``), or ``None``
               when the run did not normalise observations
    """

    network: Params
    obs_stats: RunningMeanStd | None


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so jax.jit(policy.act) works
class Policy:
    """A trained policy: the config that rebuilds its network and every seed's parameters.

    config:       the run's config (environment, network, normalisation)
    params:       :class:`PolicyParams`, every leaf with a leading ``[num_seeds]`` axis
    seed_indices: ``[num_seeds]`` the index of each row in the run it came from (an export of
                  one seed keeps its index); default ``0 .. num_seeds - 1``

    Straight from training, without files: :meth:`from_train_output`.
    """

    config: BaseConfig
    params: PolicyParams
    seed_indices: tuple[int, ...] | None = None

    def __post_init__(self):
        indices = tuple(range(self.num_seeds)) if self.seed_indices is None else tuple(self.seed_indices)
        if len(indices) != self.num_seeds:
            raise ConfigError(f"seed_indices has {len(indices)} entries for {self.num_seeds} seeds")
        object.__setattr__(self, "seed_indices", indices)

    @classmethod
    def from_train_output(cls, config: BaseConfig, out: Any) -> "Policy":
        """The policy of ``jax.vmap(make_train(config))``'s :class:`~purejaxrl_ppo.core.types.TrainOutput` (``[seeds]``)."""
        obs_stats = out.state.normalizer.obs if config.normalize_observations else None
        return cls(config, PolicyParams(out.params, obs_stats))

    # ------------------------------------------------------------------ what it is
    @property
    def num_seeds(self) -> int:
        """How many seeds' parameters it holds."""
        return int(jax.tree_util.tree_leaves(self.params.network)[0].shape[0])

    @functools.cached_property
    def env(self) -> Env:
        """The environment it was trained on (:func:`~purejaxrl_ppo.core.envs.make_env`)."""
        return make_env(self.config.env_name)

    @functools.cached_property
    def network(self) -> Network:
        """The network ``config.policy`` names, built for the environment's spaces."""
        return make_network(self.config, self.env.action_space, observation_spec(self.env))

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """``O``: one observation's shape (of a flat observation; see :attr:`observation_spec` for dicts)."""
        return tuple(self.env.observation_shape or ())

    @property
    def observation_spec(self) -> Any:
        """One observation's shapes and dtypes: a ``jax.ShapeDtypeStruct``, or a dict of them."""
        return observation_spec(self.env)

    @property
    def action_space(self) -> ActionSpace:
        """The environment's action space (what :meth:`step` returns lies in it)."""
        return self.env.action_space

    @property
    def recurrent(self) -> bool:
        """True for memory policies: act with :meth:`step`, threading the carry."""
        return bool(self.network.recurrent)

    def params_of(self, seed_index: int) -> PolicyParams:
        """Seed ``seed_index``'s :class:`PolicyParams` (row ``seed_index`` of :attr:`params`)."""
        try:
            index = operator.index(seed_index)  # an int or a numpy integer, not a float or an array
        except TypeError:
            index = None
        if index is None or not 0 <= index < self.num_seeds:
            raise ConfigError(f"seed index must be an integer in [0, {self.num_seeds}), got {seed_index!r}")
        return jax.tree_util.tree_map(lambda x: x[index], self.params)

    # ------------------------------------------------------------------ acting (pure, jittable)
    def initial_carry(self, num_envs: int | None = None) -> Carry:
        """The carry at an episode's start: for one env (``None``) or ``[num_envs]`` envs (``()`` when feed-forward)."""
        return self.network.initial_carry(() if num_envs is None else (num_envs,))

    def step(self, params: PolicyParams, carry: Carry, obs: jax.Array, key: jax.Array | None = None,
             deterministic: bool | jax.Array = True, reset: jax.Array | None = None) -> tuple[Carry, jax.Array]:
        """One step: ``(carry after obs, env action)`` for ``obs [*O]`` or ``[N, *O]`` (see the module docstring).

        key: a PRNG key, needed for sampled actions; deterministic: a Python bool, or a traced
        bool (a jitted call's argument, unless ``static_argnames="deterministic"``): then both
        actions are computed and one selected, and without a key the greedy one is the only one.
        """
        batched = self._check_obs(obs)
        if key is None and deterministic is False:
            raise ConfigError("stochastic actions (deterministic=False) need a PRNG key")
        if key is None:
            deterministic = True
        num_envs = leading_size(obs) if batched else 1
        self._check_carry(carry, num_envs if batched else None)
        if not batched:
            obs = jax.tree_util.tree_map(lambda x: x[None], obs)
            carry = jax.tree_util.tree_map(lambda x: x[None], carry)
        reset = jnp.broadcast_to(jnp.asarray(False if reset is None else reset, bool), (num_envs,))
        carry, action = act_step(self.network, params, carry, obs, reset, key, deterministic)
        if not batched:
            carry, action = jax.tree_util.tree_map(lambda x: x[0], (carry, action))
        return carry, action

    def act(self, params: PolicyParams, obs: jax.Array, key: jax.Array | None = None,
            deterministic: bool | jax.Array = True) -> jax.Array:
        """The env action for ``obs [*O]`` or ``[N, *O]`` of a feed-forward policy (memory policies: :meth:`step`)."""
        if self.recurrent:
            raise ConfigError(f"policy {self.config.policy!r} carries memory between steps: act with "
                              "policy.step(params, carry, obs, ...) from carry = policy.initial_carry(...)")
        batched = self._check_obs(obs)
        carry = self.initial_carry(leading_size(obs) if batched else None)
        return self.step(params, carry, obs, key, deterministic)[1]

    # ------------------------------------------------------------------ input checks (at trace time)
    def _check_obs(self, obs: Any) -> bool:
        """True for ``[N, *O]``, False for ``[*O]``; a one-line :class:`ConfigError` for anything else
        (for a dict observation: every entry one env, or every entry ``N`` envs)."""
        spec = self.observation_spec
        if is_structured(spec):
            if not isinstance(obs, dict) or sorted(obs) != sorted(spec):
                got = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
                raise ConfigError(f"obs must be a dict with keys {sorted(spec)} for {self.config.env_name}, got {got}")
            pairs = [(tuple(getattr(obs[k], "shape", ())), tuple(spec[k].shape)) for k in sorted(spec)]
        else:
            pairs = [(tuple(getattr(obs, "shape", ())), tuple(spec.shape))]
        if all(shape == want for shape, want in pairs):
            return False
        sizes = {shape[0] for shape, want in pairs if len(shape) == len(want) + 1 and shape[1:] == want}
        if len(sizes) == 1 and all(len(shape) == len(want) + 1 and shape[1:] == want for shape, want in pairs):
            return True
        if is_structured(spec):
            wants = ", ".join(f"{k}: {list(spec[k].shape)}" for k in sorted(spec))
            got = ", ".join(f"{k}: {list(shape)}" for k, (shape, _) in zip(sorted(spec), pairs))
            raise ConfigError(f"obs entries have shapes {{{got}}}; {self.config.env_name} takes {{{wants}}} (one env) "
                              f"or each with a leading N (N envs)")
        shape, want = pairs[0]
        raise ConfigError(f"obs has shape {list(shape)}; {self.config.env_name} takes {list(want)} (one env) "
                          f"or [N, {', '.join(map(str, want))}] (N envs)")

    def _check_carry(self, carry: Carry, num_envs: int | None) -> None:
        want = jax.eval_shape(lambda: self.initial_carry(num_envs))
        got = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), carry)
        if jax.tree_util.tree_structure(got) != jax.tree_util.tree_structure(want) or any(
                a.shape != b.shape for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want))):
            envs = "one env" if num_envs is None else f"{num_envs} envs"
            call = "policy.initial_carry()" if num_envs is None else f"policy.initial_carry({num_envs})"
            raise ConfigError(f"the carry does not fit obs of {envs}: start each episode from {call}")


def act_step(network: Network, params: PolicyParams, carry: Carry, obs: jax.Array, reset: jax.Array,
             key: jax.Array | None, deterministic: bool | jax.Array) -> tuple[Carry, jax.Array]:
    """``(carry, env action [N, ...])`` for ``obs [N, *O]``, ``reset [N]``: the greedy or a sampled action.

    The greedy branch is :func:`~purejaxrl_ppo.core.evaluate.greedy_action`'s computation
    (network step on the normalised obs, ``deterministic_action``, ``env_action``); the
    sampled one draws from ``network.distribution`` as the training rollout does.
    """
    carry, dist_params, _ = step(network, params.network, carry, policy_input(obs, params.obs_stats), reset)
    greedy = network.deterministic_action(dist_params)
    if deterministic is True:
        return carry, network.env_action(greedy)
    sampled, _ = network.distribution(dist_params).sample_and_log_prob(seed=key)
    action = sampled if deterministic is False else jnp.where(jnp.asarray(deterministic), greedy, sampled)
    return carry, network.env_action(action)
