"""Adapter for POPGym Arcade, pixel games for memory and partial observability (``pip install popgym-arcade``).

Names are ``"popgym_arcade/<id>"`` with POPGym Arcade's registered ids, optionally with options:
``"popgym_arcade/CartPoleEasy"``, ``"popgym_arcade/CountRecallHard?partial=true"``,
``"popgym_arcade/MineSweeperEasy?obs_size=256"``.

Observations are the games' RGB frames, uint8 ``[S, S, 3]`` with ``S = obs_size`` (128 by default, or 256);
the games render uint8 already, so nothing is rescaled. ``?partial=true`` builds the game with
``partial_obs=True``, its partially observed (POMDP) rendering. Actions are discrete, 5 for every game
(up, down, left, right, fire/confirm: the games' action tables, and what POPGym Arcade's own baselines
use); AutoEncode's ``action_space()`` says 4, which would leave its confirm action (4) unreachable.

gymnax 1.0. POPGym Arcade is written against stable-gymnax (a fork of gymnax 0.0.x), whose ``step``
resets on the ``done`` that ``step_env`` returns. gymnax 1.0's ``Environment.step`` fails on every game:
it reads ``state.time`` for its own time limit (``AttributeError: 'EnvState' object has no attribute
'time'`` for CountRecall, BattleShip, MineSweeper, Navigator and AutoEncode; CartPole and Skittles keep
gymnax's default ``params.max_steps_in_episode`` of 1, so it would truncate after every step), and
CartPole, Skittles, Breakout and Tetris call ``discount``, which gymnax 1.0 routes to ``is_terminated``, a
hook they do not define (``NotImplementedError``, from ``step_env`` itself). So this adapter calls
``reset_env`` and ``step_env`` itself and resets on their ``done``, and gives each game instance
``is_terminated = is_terminal`` (what stable-gymnax's ``discount`` called; the discount only lands in an
info dict that is dropped).

Episode ends. Each game folds its time limit into ``done``; its info's ``terminated``/``truncated`` do
not always match that ``done`` (CartPole's ``terminated`` includes the time limit; AutoEncode's and
CartPole's ``truncated`` fire one step before the ``done`` they describe). This adapter splits ``done``
into ``terminated`` (the game's own end: lost, won, all cards played) and ``truncated`` (the time limit
alone) with each game's own condition, :data:`RULES`. A game that ends naturally on the very step its
time limit is reached is ``terminated``, except in Tetris, where a game over on that step counts as
truncated, as Tetris's own reward treats it (no -1 penalty). ``max_episode_steps`` is the longest
episode: the time limit, plus one where the game checks it one step late (CartPole, AutoEncode,
MineSweeper after a reveal).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ActionSpace, StepResult, auto_reset

PREFIX = "popgym_arcade/"
OPTIONS = ("partial", "obs_size")
#: The frame sizes the games render (``?obs_size=``).
OBS_SIZES = (128, 256)
DEFAULT_OBS_SIZE = 128
#: Every game's actions: up, down, left, right, fire/confirm.
NUM_ACTIONS = 5
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def import_popgym_arcade():
    """``popgym_arcade``, imported on first use (its games build jax arrays at import)."""
    with jax.ensure_compile_time_eval():
        import popgym_arcade
        import popgym_arcade.registration  # noqa: F401
    return popgym_arcade


def env_ids() -> tuple[str, ...]:
    """POPGym Arcade's registered game ids (all 30 run here; see the module docstring)."""
    return tuple(import_popgym_arcade().registration.REGISTERED_ENVIRONMENTS)


# ----------------------------------------------------------------------------- each game's episode ends
# natural(env, params, state, action, next_state, info) -> bool: the game's own end inside step_env's done,
# given the state before the step; the rest of done is the time limit.
def _info_terminated(env, params, state, action, next_state, info):
    """The game's info ``terminated`` is exactly the non-time part of its ``done``."""
    return jnp.asarray(info["terminated"]).astype(bool)


def _cartpole_natural(env, params, state, action, next_state, info):
    """CartPole's done is ``is_terminal`` of the state *before* the step (out of bounds, or its time limit)."""
    return env.is_terminal(state.replace(time=0), params)


def _autoencode_natural(env, params, state, action, next_state, info):
    """AutoEncode's done checks the count of played cards *before* the step (and its time limit)."""
    return state.count >= env.decksize * env.num_decks


def _breakout_natural(env, params, state, action, next_state, info):
    """Breakout's ``terminal`` (ball lost or every brick cleared) before the time limit is or-ed in: the
    paddle and ball update again (cheap: no rendering), as Breakout's step_env does it."""
    from popgym_arcade.environments import breakout

    moved, new_x, new_y = breakout.step_agent(state, env.action_set[action], env.paddle_width)
    return breakout.step_ball_brick(moved, new_x, new_y, params, env.paddle_width)[0].terminal


def _tetris_natural(env, params, state, action, next_state, info):
    """Tetris: ten lines cleared, or a game over before the time limit (Tetris's own reward counts a game
    over on the time-limit step as the time limit: no penalty)."""
    return jnp.logical_or(next_state.lines_cleared >= 10, next_state.time < params.max_steps_in_episode)


@dataclasses.dataclass(frozen=True)
class Rules:
    """How one game's ``done`` splits: ``natural`` (see above) and ``max_steps(env, params)``, the longest episode."""

    natural: Callable[..., jax.Array]
    max_steps: Callable[[Any, Any], int]


#: By the game's module in ``popgym_arcade.environments``.
RULES: dict[str, Rules] = {
    "autoencode": Rules(_autoencode_natural, lambda env, params: env.max_steps_in_episode + 1),
    "battleship": Rules(_info_terminated, lambda env, params: env.max_episode_length),
    "breakout": Rules(_breakout_natural, lambda env, params: params.max_steps_in_episode),
    "cartpole": Rules(_cartpole_natural, lambda env, params: env.max_steps_in_episode + 1),
    "countrecall": Rules(_info_terminated, lambda env, params: env.max_steps_in_episode),
    "minesweeper": Rules(_info_terminated, lambda env, params: env.max_episode_length + 1),
    "navigator": Rules(_info_terminated, lambda env, params: env.max_steps_in_episode),
    "skittles": Rules(_info_terminated, lambda env, params: env.max_steps_in_episode),
    "tetris": Rules(_tetris_natural, lambda env, params: params.max_steps_in_episode),
}


def _rules(game: Any) -> Rules:
    module = type(game).__module__.rsplit(".", 1)[-1]
    if module not in RULES:
        raise ValueError(f"no episode-end rules for the POPGym Arcade game {type(game).__name__} ({module}); "
                         f"known games: {', '.join(sorted(RULES))}")
    return RULES[module]


def _restore_legacy_discount(game: Any) -> None:
    """Let gymnax 1.0's ``discount`` work on a game written for stable-gymnax (see the module docstring)."""
    from gymnax.environments.environment import Environment

    cls = type(game)
    if cls.is_terminated is Environment.is_terminated and cls.is_terminal is not Environment.is_terminal:
        game.is_terminated = game.is_terminal


# ----------------------------------------------------------------------------- options
def _parse_options(env_id: str, options: Mapping[str, str]) -> dict[str, Any]:
    """``popgym_arcade.make`` keyword arguments from the name's options."""
    raw_partial = options.get("partial", "false").lower()
    if raw_partial not in _BOOLEANS:
        raise ValueError(f"partial must be true or false, got {options['partial']!r} for {PREFIX}{env_id}")
    raw_size = options.get("obs_size", str(DEFAULT_OBS_SIZE))
    if not raw_size.isdigit() or int(raw_size) not in OBS_SIZES:
        raise ValueError(f"obs_size must be one of {', '.join(map(str, OBS_SIZES))}, got {raw_size!r} "
                         f"for {PREFIX}{env_id}")
    return {"partial_obs": _BOOLEANS[raw_partial], "obs_size": int(raw_size)}


@dataclasses.dataclass(frozen=True)
class PopGymArcadeEnv:
    """A POPGym Arcade game behind the :class:`~purejaxrl_ppo.core.envs.base.Env` interface.

    The state is the game's own state; ``step`` resets on the game's ``done`` from the step's key.
    """

    env_id: str
    env: Any = dataclasses.field(repr=False)
    params: Any = dataclasses.field(repr=False)
    rules: Rules = dataclasses.field(repr=False)
    observation_spec: jax.ShapeDtypeStruct
    action_space: ActionSpace = ActionSpace(discrete=True, num_actions=NUM_ACTIONS)

    @classmethod
    def make(cls, env_id: str, options: Mapping[str, str]) -> "PopGymArcadeEnv":
        if env_id not in env_ids():
            raise ValueError(f"unknown POPGym Arcade game {env_id!r}; known: {', '.join(env_ids())}")
        kwargs = _parse_options(env_id, options)
        with jax.ensure_compile_time_eval():
            game, params = import_popgym_arcade().make(env_id, **kwargs)
        _restore_legacy_discount(game)
        size = kwargs["obs_size"]
        spec = jax.ShapeDtypeStruct((size, size, 3), jnp.uint8)
        env = cls(env_id, game, params, _rules(game), spec)
        obs, _ = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        if (obs.shape, obs.dtype) != (spec.shape, spec.dtype):
            raise ValueError(f"{PREFIX}{env_id} renders {obs.dtype}{list(obs.shape)}, expected uint8{list(spec.shape)}")
        return env

    @property
    def name(self) -> str:
        return PREFIX + self.env_id

    @property
    def observation_shape(self) -> None:
        """``None``: observations are uint8 images, never flat float32 vectors."""
        return None

    @property
    def max_episode_steps(self) -> int:
        """The longest episode, in agent steps (the game's time limit; see :data:`RULES`)."""
        return int(self.rules.max_steps(self.env, self.params))

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset_env(key, self.params)
        return jnp.asarray(obs, jnp.uint8), state

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepResult:
        key_step, key_reset = jax.random.split(key)
        action = jnp.asarray(action, jnp.int32)
        obs, next_state, reward, done, info = self.env.step_env(key_step, state, action, self.params)
        done = jnp.asarray(done).astype(bool)
        natural = self.rules.natural(self.env, self.params, state, action, next_state, info)
        terminated = jnp.logical_and(done, natural)
        final_obs = jnp.asarray(obs, jnp.uint8)

        truncated = jnp.logical_and(done, jnp.logical_not(natural))
        return auto_reset(done, self.reset(key_reset), final_obs, next_state, reward, terminated, truncated)


def make(env_id: str, options: dict[str, str]) -> PopGymArcadeEnv:
    """The POPGym Arcade game ``env_id`` (already checked against :func:`env_ids`) with ``options``."""
    return PopGymArcadeEnv.make(env_id, options)
