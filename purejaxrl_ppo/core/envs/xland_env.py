"""Adapter for XLand-MiniGrid (``pip install xminigrid``): MiniGrid ports and XLand meta-RL grids in JAX.

Names are ``"xland/<id>"`` with xminigrid's registered ids, e.g. ``"xland/MiniGrid-Empty-5x5"``,
``"xland/MiniGrid-DoorKey-8x8?max_steps=200"``, ``"xland/XLand-MiniGrid-R1-9x9?benchmark=trivial-21k"``.

Observations: the agent's egocentric view (tile id, colour id per cell), int32 ``[V, V, 2]``
(V = 7 for the MiniGrid ids, 5 for XLand, 3 for Memory). Actions: xminigrid's 6 (forward,
turn right, turn left, pick up, put down, toggle).

``XLand-MiniGrid-R*`` ids are tasks only with a ruleset (goal, rules, initial objects) from one
of xminigrid's benchmarks, files that ``xminigrid.load_benchmark`` downloads from Hugging Face
on first use; without a ruleset the grid has no goal and no reward. Here those ids need the
benchmark file on disk (nothing is downloaded: :func:`benchmark_path` says where it goes). Each
episode draws a ruleset from the benchmark (or keeps one: ``?ruleset=<index>``) and the
observation becomes a dict that also carries the ruleset, as xminigrid's
``RulesAndGoalsObservationWrapper`` does: ``img``, ``goal_encoding`` and ``rule_encoding``.

The raw environment is stepped (no xminigrid wrapper) and the adapter resets itself, so
``final_obs`` is the true last observation; ``terminated`` is xminigrid's ``discount == 0``
(goal reached, or Memory's wrong object), ``truncated`` its time limit otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.envs.base import ActionSpace, StepResult, auto_reset

OPTIONS = ("max_steps", "view_size", "benchmark", "ruleset")
#: Options that only the XLand-MiniGrid-R* ids (the meta-RL grids) accept.
RULESET_OPTIONS = ("benchmark", "ruleset")
XLAND_PREFIX = "XLand-MiniGrid-"
DEFAULT_BENCHMARK = "trivial-21k"


def import_xminigrid():
    """The ``xminigrid`` module, imported on first use (it builds jax arrays at import)."""
    with jax.ensure_compile_time_eval():
        import xminigrid
        import xminigrid.benchmarks  # noqa: F401
    return xminigrid


def env_ids() -> tuple[str, ...]:
    """xminigrid's registered ids (the XLand-MiniGrid-R* ones build only with a benchmark file on disk)."""
    return tuple(import_xminigrid().registered_environments())


def benchmark_path(name: str) -> str:
    """Where ``xminigrid.load_benchmark(name)`` keeps benchmark ``name``: ``$XLAND_MINIGRID_DATA`` (default
    ``~/.xland_minigrid``) / the file's Hugging Face name."""
    benchmarks = import_xminigrid().benchmarks
    return os.path.join(benchmarks.DATA_PATH, benchmarks.NAME2HFFILENAME[name])


def benchmark_url(name: str) -> str:
    """The Hugging Face address ``xminigrid.load_benchmark`` downloads benchmark ``name`` from."""
    benchmarks = import_xminigrid().benchmarks
    return f"https://huggingface.co/datasets/{benchmarks.HF_REPO_ID}/resolve/main/{benchmarks.NAME2HFFILENAME[name]}"


@functools.lru_cache(maxsize=4)
def _load_benchmark(path: str) -> Any:
    """The benchmark stored at ``path`` with numpy leaves (goals ``[N, 5]``, rules ``[N, R, 7]``,
    init_tiles ``[N, T, 2]``, num_rules ``[N]``)."""
    benchmark = import_xminigrid().benchmarks.load_benchmark_from_path(path)
    return jax.tree_util.tree_map(np.asarray, benchmark)


def _positive_int(options: dict[str, str], key: str, env_id: str) -> int | None:
    raw = options.get(key)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{key} must be a positive integer, got {raw!r} for xland/{env_id}")
    return int(raw)


def _benchmark(env_id: str, options: dict[str, str]) -> tuple[Any, str, int | None]:
    """``(benchmark, its name, fixed ruleset index or None)`` for an XLand-MiniGrid-R* id; a one-line ``ValueError``
    when the benchmark is unknown or not on disk, or the index is out of range."""
    xminigrid = import_xminigrid()
    name = options.get("benchmark", DEFAULT_BENCHMARK)
    if name not in xminigrid.registered_benchmarks():
        raise ValueError(f"benchmark must be one of {', '.join(xminigrid.registered_benchmarks())}; got {name!r} "
                         f"for xland/{env_id}")
    path = benchmark_path(name)
    if not os.path.exists(path):
        # One line within the 300 characters build_env keeps (like the MNIST note in core/envs DOWNLOADS).
        raise ValueError(f"xland/{env_id} needs the XLand-MiniGrid benchmark {name!r}, a one-time download absent "
                         f"here: save {benchmark_url(name)} as {path} ($XLAND_MINIGRID_DATA)")
    benchmark = _load_benchmark(path)
    index = options.get("ruleset")
    if index is None:
        return benchmark, name, None
    count = len(benchmark.goals)
    if not index.isdigit() or int(index) >= count:
        raise ValueError(f"ruleset must be an index in [0, {count}) of benchmark {name!r}; got {index!r} "
                         f"for xland/{env_id}")
    return benchmark, name, int(index)


@dataclasses.dataclass(frozen=True)
class XLandEnv:
    """An xminigrid environment behind the :class:`~purejaxrl_ppo.core.envs.base.Env` interface.

    The state is xminigrid's ``TimeStep``. ``benchmark`` (XLand-MiniGrid-R* ids only): the
    rulesets an episode draws from (numpy leaves, constants of the compiled program), or
    ``None``; ``benchmark_name`` its name; ``ruleset``: one fixed index into it, or ``None`` to draw
    one per episode. ``max_episode_steps``: xminigrid's ``max_steps``, after which an episode is
    truncated. Equality and hashing leave out the params and the benchmark (jax and numpy arrays): the
    other fields determine them.
    """

    env_id: str
    max_episode_steps: int
    env: Any = dataclasses.field(repr=False, compare=False)
    params: Any = dataclasses.field(repr=False, compare=False)
    observation_spec: Any
    action_space: ActionSpace
    benchmark: Any = dataclasses.field(default=None, repr=False, compare=False)
    benchmark_name: str | None = None
    ruleset: int | None = None

    @classmethod
    def make(cls, env_id: str, options: dict[str, str]) -> "XLandEnv":
        xminigrid = import_xminigrid()
        meta = env_id.startswith(XLAND_PREFIX)
        given = sorted(set(options) & set(RULESET_OPTIONS))
        if given and not meta:
            raise ValueError(f"option(s) {given} apply to the XLand-MiniGrid-R* ids only, not xland/{env_id}")
        overrides = {}
        max_steps = _positive_int(options, "max_steps", env_id)
        if max_steps is not None:
            overrides["max_steps"] = max_steps
        view_size = _positive_int(options, "view_size", env_id)
        if view_size is not None:
            if view_size % 2 == 0:
                raise ValueError(f"view_size must be odd (the view is centred on the agent), "
                                 f"got {view_size} for xland/{env_id}")
            overrides["view_size"] = view_size
        benchmark, benchmark_name, ruleset = _benchmark(env_id, options) if meta else (None, None, None)
        env, params = xminigrid.make(env_id, **overrides)
        space = ActionSpace(discrete=True, num_actions=int(env.num_actions(params)))
        probe = cls(env_id, int(params.max_steps), env, params, None, space, benchmark, benchmark_name, ruleset)
        obs, _ = jax.eval_shape(probe.reset, jax.random.PRNGKey(0))
        spec = jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype), obs)
        return dataclasses.replace(probe, observation_spec=spec)

    @property
    def observation_shape(self) -> None:
        """``None``: observations are integer grids (or dicts), never one flat float32 vector."""
        return None

    def _observation(self, timestep: Any) -> Any:
        """int32 ``[V, V, 2]``; with a benchmark a dict that adds the ruleset as float32 vectors
        (``goal_encoding [5]``, ``rule_encoding [R * 7]``, R = the benchmark's most rules)."""
        img = jnp.asarray(timestep.observation, jnp.int32)
        if self.benchmark is None:
            return img
        state = timestep.state
        return {
            "img": img,
            "goal_encoding": jnp.asarray(state.goal_encoding, jnp.float32).reshape(-1),
            "rule_encoding": jnp.asarray(state.rule_encoding, jnp.float32).reshape(-1),
        }

    def _params(self, key: jax.Array) -> Any:
        """The env params of a new episode: with a benchmark, its ruleset (drawn with ``key`` or fixed)."""
        if self.benchmark is None:
            return self.params
        goals, rules, init_tiles = (jnp.asarray(self.benchmark.goals), jnp.asarray(self.benchmark.rules),
                                    jnp.asarray(self.benchmark.init_tiles))
        if self.ruleset is None:
            index = jax.random.randint(key, (), 0, goals.shape[0])
        else:
            index = jnp.int32(self.ruleset)
        ruleset = import_xminigrid().benchmarks.get_ruleset(goals, rules, init_tiles, index)
        return self.params.replace(ruleset=ruleset)

    def reset(self, key: jax.Array) -> tuple[Any, Any]:
        ruleset_key, reset_key = jax.random.split(key)
        timestep = self.env.reset(self._params(ruleset_key), reset_key)
        return self._observation(timestep), timestep

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepResult:
        # The params' ruleset is read only by reset; a running episode keeps its own in the state.
        next_timestep = self.env.step(self.params, state, jnp.asarray(action, jnp.int32))
        last = next_timestep.last()
        terminated = jnp.logical_and(last, next_timestep.discount == 0)
        truncated = jnp.logical_and(last, jnp.logical_not(terminated))
        final_obs = self._observation(next_timestep)

        reward = next_timestep.reward
        return auto_reset(last, self.reset(key), final_obs, next_timestep, reward, terminated, truncated)


def make(env_id: str, options: dict[str, str]) -> XLandEnv:
    """The xminigrid env ``env_id`` (already checked against :func:`env_ids`) with ``options``."""
    return XLandEnv.make(env_id, options)
