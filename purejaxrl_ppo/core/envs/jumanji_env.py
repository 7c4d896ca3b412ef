"""Adapter for Jumanji, InstaDeep's JAX suite of puzzles, routing and packing problems (``pip install jumanji``).

Names are ``"jumanji/<id>"`` with a Jumanji registry id from :data:`ADAPTED`, e.g.
``"jumanji/Snake-v1"``, ``"jumanji/Minesweeper-v0"``, ``"jumanji/Knapsack-v1?time_limit=20"``.

Observations are dicts, one key per field of Jumanji's observation (its own names):

- the fields listed in the env's :class:`Encoding` ``grids`` are spatial boards, given as int32
  ``[H, W, C]`` (a ``[H, W]`` board gets ``C = 1``; Rubik's cube faces become the channels,
  ``[3, 3, 6]``); Snake's grid is already a float32 ``[12, 12, 5]`` image of values in [0, 1]
  and stays float32;
- every other field is one float32 vector (nested fields, e.g. BinPack's ``ems.x1 .. ems.z2``,
  are flattened and concatenated in Jumanji's field order; scalars become ``[1]``);
- ``"action_mask"`` (:data:`~purejaxrl_ppo.core.envs.base.ACTION_MASK`): Jumanji's mask, bool,
  flattened in row-major order.

Actions. A ``DiscreteArray`` action is ``Discrete(n)``. A ``MultiDiscreteArray`` action whose
mask is *joint* (one entry per combination: Minesweeper ``[row, col]`` with a ``[rows, cols]``
mask, BinPack ``[ems, item]``, Tetris ``[rotation, column]``, Sudoku ``[row, col, digit]``,
FlatPack) cannot be written as per-factor masks without allowing invalid combinations, so it is
exposed as one ``Discrete(prod(nvec))`` over the combinations (row-major, the order of the
flattened mask) and converted back to Jumanji's index vector: the mask is exact. A multi-agent
action whose mask is per agent (Cleaner, RobotWarehouse: ``[num_agents, n]``) is exactly
the per-factor form, so it stays multi-discrete (``nvec = (n,) * num_agents``) with the mask
flattened to ``sum(nvec)`` entries (Cleaner, RobotWarehouse: one policy controls every agent; their
reward is shared). Rubik's cube has no mask: multi-discrete ``(6, 1, 3)``. FlatPack can reach a state
where no block fits: its all-false mask is given as all-true there (:attr:`Encoding.stuck_is_noop`).

Not adapted (``docs/envs/jumanji.md`` says why): MMST, JobShop, Connector, LevelBasedForaging,
MultiCVRP, SearchAndRescue, Sokoban.

Episode ends. The adapter steps Jumanji's env itself (no ``AutoResetWrapper``) and resets on the
step an episode ends, so ``obs`` is the next episode's first observation and ``final_obs`` the true
last one. A ``LAST`` step with discount 0 is ``terminated``; a ``LAST`` step with a non-zero
discount is ``truncated``. Jumanji 1.1 ends every adapted env's time limit with discount 0 (a
termination), which would forbid bootstrapping from a cut-off episode; so for an env with a
``time_limit`` the adapter builds it with ``time_limit`` one step longer than the limit it enforces
itself, and the step at its own limit is ``truncated`` (``terminated`` only where Jumanji ended the
episode for another reason on that step). ``max_episode_steps`` is the env's ``time_limit`` where it
has one, else an upper bound on its episode length that follows from the problem (Knapsack: the
number of items, Minesweeper: the safe cells, ...: :data:`ADAPTED`), which never cuts an episode;
Game2048 has neither and gets :data:`DEFAULT_TIME_LIMIT`. ``?time_limit=N`` shortens any env's
episodes to at most ``N`` steps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxrl_ppo.core.envs.base import ACTION_MASK, ActionSpace, StepResult, auto_reset

OPTIONS = ("time_limit",)
#: The episode limit of an env that has no ``time_limit`` and no natural bound (Game2048).
DEFAULT_TIME_LIMIT = 10_000


def _grid(x: jax.Array) -> jax.Array:
    """A ``[H, W]`` board -> int32 ``[H, W, 1]``."""
    return jnp.asarray(x, jnp.int32)[..., None]


def _faces(x: jax.Array) -> jax.Array:
    """Rubik's cube ``[6 faces, 3, 3]`` colour ids -> int32 ``[3, 3, 6]`` (faces as channels)."""
    return jnp.moveaxis(jnp.asarray(x, jnp.int32), 0, -1)


def _float_image(x: jax.Array) -> jax.Array:
    """Snake's ``[H, W, 5]`` float grid (values in [0, 1]) kept as float32."""
    return jnp.asarray(x, jnp.float32)


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How one Jumanji env is adapted.

    ``grids``: observation fields that are boards, with their conversion (every other field
    becomes a float32 vector); ``joint``: the multi-discrete action has a joint mask and is
    exposed as one discrete action over the combinations; ``bound``: the number of steps after
    which the episode surely has ended, for an env without ``time_limit`` (``env -> int``);
    ``stuck_is_noop``: in a state whose mask allows nothing every action is the same no-op, so the
    adapter allows them all there (FlatPack, where no remaining block may fit).
    """

    grids: tuple[tuple[str, Callable[[jax.Array], jax.Array]], ...] = ()
    joint: bool = False
    bound: Callable[[Any], int] | None = None
    stuck_is_noop: bool = False


#: Every adapted Jumanji id and how it is adapted. The bounds: each step of these envs either
#: commits one irreversible choice (packs an item, visits a city, colours a node, reveals a cell,
#: fills a Sudoku cell, places a block) or ends the episode (an invalid action terminates).
ADAPTED: dict[str, Encoding] = {
    "BinPack-v2": Encoding(joint=True, bound=lambda env: int(env.observation_spec.items_mask.shape[0])),
    "CVRP-v1": Encoding(bound=lambda env: 2 * int(env.num_nodes)),  # each customer, then at most a depot visit
    "Cleaner-v0": Encoding(grids=(("grid", _grid),)),
    # FlatPack: an illegal action is a no-op (reward 0) and the episode lasts num_blocks steps.
    "FlatPack-v0": Encoding(grids=(("grid", _grid),), joint=True, bound=lambda env: int(env.num_blocks),
                            stuck_is_noop=True),
    "Game2048-v1": Encoding(grids=(("board", _grid),)),
    "GraphColoring-v1": Encoding(bound=lambda env: int(env.num_nodes)),
    "Knapsack-v1": Encoding(bound=lambda env: int(env.num_items)),
    "Maze-v0": Encoding(grids=(("walls", _grid),)),
    "Minesweeper-v0": Encoding(grids=(("board", _grid),), joint=True,
                               bound=lambda env: int(env.num_rows * env.num_cols - env.num_mines)),
    "PacMan-v1": Encoding(grids=(("grid", _grid),)),
    "RobotWarehouse-v0": Encoding(),
    "RubiksCube-partly-scrambled-v0": Encoding(grids=(("cube", _faces),)),
    "RubiksCube-v0": Encoding(grids=(("cube", _faces),)),
    "SlidingTilePuzzle-v0": Encoding(grids=(("puzzle", _grid),)),
    "Snake-v1": Encoding(grids=(("grid", _float_image),)),
    "Sudoku-v0": Encoding(grids=(("board", _grid),), joint=True, bound=lambda env: 81),
    "Sudoku-very-easy-v0": Encoding(grids=(("board", _grid),), joint=True, bound=lambda env: 81),
    "TSP-v1": Encoding(bound=lambda env: int(env.num_cities)),
    "Tetris-v0": Encoding(grids=(("grid", _grid),), joint=True),
}


def import_jumanji():
    """The ``jumanji`` module, imported on first use (importing it registers every env)."""
    with jax.ensure_compile_time_eval():
        import jumanji
        import jumanji.specs  # noqa: F401
        import jumanji.types  # noqa: F401
    return jumanji


def env_ids() -> tuple[str, ...]:
    """The Jumanji ids this adapter supports (each tested: ``tests/core/envs/test_env_jumanji.py``)."""
    return tuple(sorted(ADAPTED))


def _fields(observation: Any) -> list[tuple[str, Any]]:
    """The top-level ``(name, value)`` fields of a Jumanji observation (a NamedTuple or a dataclass)."""
    if hasattr(observation, "_fields"):
        return [(name, getattr(observation, name)) for name in observation._fields]
    return [(f.name, getattr(observation, f.name)) for f in dataclasses.fields(observation)]


def _vector(value: Any) -> jax.Array:
    """Any (nested) field -> one float32 vector: its leaves flattened and concatenated."""
    leaves = jax.tree_util.tree_leaves(value)
    return jnp.concatenate([jnp.asarray(leaf, jnp.float32).reshape(-1) for leaf in leaves])


@struct.dataclass
class JumanjiState:
    """Jumanji's env state plus the adapter's step count of the current episode (int32 scalar)."""

    env_state: Any
    steps: jax.Array


@dataclasses.dataclass(frozen=True)
class JumanjiEnv:
    """A Jumanji environment behind the :class:`~purejaxrl_ppo.core.envs.base.Env` interface.

    ``joint_nvec``: the shape of Jumanji's multi-discrete action where the adapter exposes it as one
    joint discrete action (else ``()``); ``time_limit``: agent steps per episode at most.
    """

    env_id: str
    env: Any = dataclasses.field(repr=False)
    encoding: Encoding = dataclasses.field(repr=False)
    observation_spec: dict[str, jax.ShapeDtypeStruct]
    action_space: ActionSpace
    time_limit: int
    joint_nvec: tuple[int, ...] = ()

    @classmethod
    def make(cls, env_id: str, options: dict[str, str]) -> "JumanjiEnv":
        jumanji = import_jumanji()
        encoding = ADAPTED[env_id]
        env = jumanji.make(env_id)
        own = getattr(env, "time_limit", None)
        limit = int(own) if own is not None else (encoding.bound(env) if encoding.bound else DEFAULT_TIME_LIMIT)
        if "time_limit" in options:
            raw = options["time_limit"]
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"time_limit must be a positive integer, got {raw!r} for jumanji/{env_id}")
            limit = min(limit, int(raw))
        if own is not None:
            # Jumanji ends an episode at its time limit with a termination (discount 0), which would
            # forbid bootstrapping; its limit is moved one step past ours, and the adapter truncates.
            env = jumanji.make(env_id, time_limit=limit + 1)
        masked = hasattr(env.observation_spec, ACTION_MASK)
        space, joint_nvec = _action_space(env_id, env.action_spec, jumanji.specs, encoding.joint, masked)
        probe = cls(env_id, env, encoding, {}, space, limit, joint_nvec)
        obs, _ = jax.eval_shape(probe.reset, jax.random.PRNGKey(0))
        spec = {key: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for key, leaf in obs.items()}
        if masked and spec[ACTION_MASK].shape != (space.num_actions,):
            raise ValueError(f"jumanji/{env_id}: the action mask has {spec[ACTION_MASK].shape[0]} entries for "
                             f"{space.num_actions} logits")
        return dataclasses.replace(probe, observation_spec=spec)

    @property
    def observation_shape(self) -> None:
        """``None``: observations are dicts."""
        return None

    @property
    def max_episode_steps(self) -> int:
        """Agent steps after which an episode is truncated."""
        return self.time_limit

    def _observation(self, observation: Any) -> dict[str, jax.Array]:
        grids = dict(self.encoding.grids)
        obs = {}
        for name, value in _fields(observation):
            if name == ACTION_MASK:
                obs[name] = self._mask(value)
            elif name in grids:
                obs[name] = grids[name](value)
            else:
                obs[name] = _vector(value)
        return obs

    def _mask(self, mask: jax.Array) -> jax.Array:
        """Jumanji's mask, flattened (bool ``[num_actions]``).

        With ``stuck_is_noop`` (FlatPack) a mask that allows nothing becomes all-true: FlatPack can
        reach a state where no remaining block fits; there every action is the same illegal no-op
        until the episode's step budget runs out, so allowing all of them changes nothing and spares
        the policy an all-masked (undefined) distribution.
        """
        mask = jnp.asarray(mask, bool).reshape(-1)
        if self.encoding.stuck_is_noop:
            mask = mask | ~mask.any()
        return mask

    def _env_action(self, action: jax.Array) -> jax.Array:
        """The agent's action -> Jumanji's (a joint index back to Jumanji's index vector)."""
        action = jnp.asarray(action, jnp.int32)
        if self.joint_nvec:
            return jnp.stack(jnp.unravel_index(action, self.joint_nvec)).astype(jnp.int32)
        return action

    def reset(self, key: jax.Array) -> tuple[dict[str, jax.Array], JumanjiState]:
        env_state, timestep = self.env.reset(key)
        return self._observation(timestep.observation), JumanjiState(env_state, jnp.int32(0))

    def step(self, key: jax.Array, state: JumanjiState, action: jax.Array) -> StepResult:
        env_state, timestep = self.env.step(state.env_state, self._env_action(action))
        steps = state.steps + 1
        last = timestep.last().reshape(())
        discount = jnp.asarray(timestep.discount).reshape(())
        terminated = jnp.logical_and(last, discount == 0)
        truncated = jnp.logical_and(jnp.logical_or(last, steps >= self.time_limit), jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        final_obs = self._observation(timestep.observation)

        after = JumanjiState(env_state, steps)
        return auto_reset(done, self.reset(key), final_obs, after, timestep.reward, terminated, truncated)


def _action_space(env_id: str, spec: Any, specs: Any, joint: bool, masked: bool) -> tuple[ActionSpace, tuple]:
    """Jumanji's action spec -> ``(ActionSpace, joint nvec)`` (the nvec is ``()`` unless ``joint``)."""
    if isinstance(spec, specs.DiscreteArray):
        return ActionSpace(discrete=True, num_actions=int(spec.num_values), masked=masked), ()
    if isinstance(spec, specs.MultiDiscreteArray):
        nvec = tuple(int(n) for n in np.asarray(spec.num_values).reshape(-1))
        if joint:
            return ActionSpace(discrete=True, num_actions=math.prod(nvec), masked=masked), nvec
        return ActionSpace.multi_discrete(nvec, masked=masked), ()
    raise ValueError(f"jumanji/{env_id}: unsupported action spec {type(spec).__name__}")


def make(env_id: str, options: dict[str, str]) -> JumanjiEnv:
    """The Jumanji env ``env_id`` (already checked against :func:`env_ids`) with ``options``."""
    return JumanjiEnv.make(env_id, options)
