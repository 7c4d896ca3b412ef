"""The data that flows through one training iteration, time-major (``[T, N, ...]``).

One iteration (:func:`purejaxrl_ppo.core.iteration.rollout_iteration`)::

    TrainState ──rollout──▶ Transition [T, N] ──GAE──▶ UpdateBatch [T, N] ──algo.update──▶ TrainState

:class:`TrainState` is everything one seed carries between iterations; under ``vmap``
every leaf gains a leading seed axis.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class EnvRunnerState(NamedTuple):
    """What the rollout carries from one step (and one update) to the next.

    env_state:     batched env state, leading ``[N]``
    obs:           ``[N, *obs_shape]`` observation to act on
    episode_start: ``[N]`` bool, ``obs`` is the first of an episode
    carry:         the network's recurrent state, leading ``[N]`` (``()`` for feed-forward networks)
    """

    env_state: Any
    obs: jax.Array
    episode_start: jax.Array
    carry: Any


class Transition(NamedTuple):
    """A rollout, time-major: every field has leading ``[T, N]``.

    obs:           ``[T, N, *obs_shape]`` observation acted on (raw, before normalisation)
    action:        ``[T, N]`` int32 or ``[T, N, A]`` float32, as sampled (before clip/tanh)
    log_prob:      ``[T, N]`` log π_old(action | obs)
    value:         ``[T, N]`` V_old(obs)
    reward:        ``[T, N]``
    terminated:    ``[T, N]`` bool, MDP terminal: no bootstrap
    done:          ``[T, N]`` bool, episode ended (terminated or truncated)
    final_obs:     ``[T, N, *obs_shape]`` true next observation (before auto-reset)
    episode_start: ``[T, N]`` bool, ``obs`` began an episode (a recurrent network resets there)
    info:          dict of ``[T, N]`` arrays from env wrappers (episode statistics)
    carry:         the network's carry after acting on ``obs`` (before any reset), leaves ``[T, N, ...]``:
                   what V(``final_obs``) continues from (``()`` for feed-forward networks)
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    final_obs: jax.Array
    episode_start: jax.Array
    info: dict
    carry: Any = ()


def swap_time_env(tree: Any) -> Any:
    """Swap the first two axes of every leaf: ``[T, N, ...] <-> [N, T, ...]``."""
    return jax.tree_util.tree_map(lambda x: x.swapaxes(0, 1), tree)


def flatten_time_major(x: jax.Array) -> jax.Array:
    """``[T, N, ...] -> [T*N, ...]``."""
    return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


class UpdateBatch(NamedTuple):
    """What an algorithm's ``update`` receives: one rollout with its advantages, time-major.

    obs:           ``[T, N, *obs_shape]`` the network's inputs (normalised if the run normalises)
    action:        ``[T, N]`` int32 or ``[T, N, A]`` float32
    log_prob:      ``[T, N]`` log π_old(action | obs) recorded while acting
    value:         ``[T, N]`` V_old(obs) recorded while acting
    advantage:     ``[T, N]`` GAE advantages (not normalised)
    target:        ``[T, N]`` value targets (advantage + value)
    episode_start: ``[T, N]`` bool, ``obs`` began an episode (``None`` once flattened)
    initial_carry: the network's carry ``[N]`` at the start of the rollout (``()`` feed-forward)
    extras:        algorithm-specific data, a dict of ``[T, N, ...]`` arrays (as Brax's ``Transition.extras``)

    Algorithms that treat transitions independently call :meth:`flatten` (``[T·N]``);
    a recurrent policy's update keeps the sequences.
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    episode_start: jax.Array | None = None
    initial_carry: Any = ()
    extras: dict = {}

    def flatten(self) -> "UpdateBatch":
        """Independent transitions: every ``[T, N, ...]`` field (extras too) as ``[T·N, ...]``.

        The episode structure is gone afterwards (``episode_start=None``), so a network that
        carries state cannot use the result: raises ``ValueError`` if ``initial_carry`` is not empty.
        """
        if jax.tree_util.tree_leaves(self.initial_carry):
            raise ValueError("a recurrent policy's batch cannot be flattened into independent transitions; "
                             "split it into minibatches of whole sequences instead")
        fields = (self.obs, self.action, self.log_prob, self.value, self.advantage, self.target)
        extras = jax.tree_util.tree_map(flatten_time_major, self.extras)
        flat = [jax.tree_util.tree_map(flatten_time_major, field) for field in fields]  # obs may be a dict
        return UpdateBatch(*flat, None, (), extras)

    def env_major(self) -> "UpdateBatch":
        """Every ``[T, N, ...]`` field as ``[N, T, ...]`` (``initial_carry`` stays ``[N, ...]``).

        Then every leaf leads with the env axis, so minibatches of whole sequences are a
        shuffle and split of that axis (:func:`~purejaxrl_ppo.core.algos.base.minibatch_epochs`);
        :meth:`time_major` undoes it.
        """
        return self._swap()

    def time_major(self) -> "UpdateBatch":
        """Inverse of :meth:`env_major`."""
        return self._swap()

    def _swap(self) -> "UpdateBatch":
        fields = (self.obs, self.action, self.log_prob, self.value, self.advantage, self.target, self.episode_start)
        return UpdateBatch(*swap_time_env(fields), self.initial_carry, swap_time_env(self.extras))

    def flat(self, x: Any) -> Any:
        """``x`` (leaves ``[T, N, ...]``) as ``[T·N, ...]``: outputs of a sequence batch, aligned with :meth:`flatten`."""
        return jax.tree_util.tree_map(flatten_time_major, x)


class TrainState(NamedTuple):
    """Everything one seed carries between updates.

    algo_state:  the algorithm's state (``.params``: the network's parameters, optimiser state)
    runner:      environments, the observation to act on and the network's carry
    key:         PRNG key for the next update
    update_step: int32 scalar, updates done so far
    normalizer:  observation statistics and reward scaler (used when the config enables them)
    """

    algo_state: Any
    runner: EnvRunnerState
    key: jax.Array
    update_step: jax.Array
    normalizer: Any


class TrainOutput(NamedTuple):
    """Result of ``train(key)``.

    metrics: dict of arrays with leading ``[num_updates]`` (``[seeds, num_updates]`` under vmap)
    state:   the final :class:`TrainState`
    """

    metrics: dict[str, jax.Array]
    state: TrainState

    @property
    def params(self) -> Any:
        """Final network parameters (``{"actor": ..., "critic": ...}`` for the MLP)."""
        return self.state.algo_state.params


def is_key(x: Any) -> bool:
    """True for a typed PRNG key array (``jax.random.key``), whose raw data is ``jax.random.key_data``."""
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
