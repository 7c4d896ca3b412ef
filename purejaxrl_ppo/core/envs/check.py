"""``check_env(env)``: does an environment follow the :class:`~purejaxrl_ppo.core.envs.base.Env` protocol?

Like Stable-Baselines3's ``check_env``, for pure-JAX environments. :func:`env_problems` returns one line
per problem (``[]`` when the env follows the protocol); :func:`check_env` raises :class:`EnvCheckError`
with those lines. The checks, in order (a check that raises while tracing is itself one line, and the
checks that need its result are skipped):

1. spaces: ``observation_spec``/``observation_shape`` (:func:`~purejaxrl_ppo.core.envs.base.observation_spec`),
   ``action_space`` (an :class:`~purejaxrl_ppo.core.envs.base.ActionSpace`), ``max_episode_steps`` (an int > 0);
   the dtype conventions of the spec (float32 features, uint8 images ``[H, W, C]``, int32 grids and ids, bool
   ``action_mask`` only; never 64-bit); the action mask entry (``bool [num_actions]`` exactly when
   ``action_space.masked``);
2. ``jax.jit(jax.vmap(env.reset))`` and ``jax.jit(jax.vmap(env.step))`` over ``num_envs`` keys: reset's obs,
   step's obs and final_obs match the spec exactly (structure, shapes, dtypes); reward a float32 scalar,
   terminated and truncated bool scalars, info a dict;
3. a rollout of ``num_steps`` steps with random valid actions (uniform over the allowed actions of each
   factor, uniform in ``[low, high]`` for continuous ones): no NaN or inf in obs, final_obs or reward; an
   action mask allows at least one action per factor in every state (reset, every step, after auto-resets);
   ``terminated`` and ``truncated`` never both true; ``final_obs == obs`` where the episode did not end;
   step auto-resets (flagged only when it surely does not: ``obs == final_obs`` at every one of at least two
   ends, and fresh resets draw those observations so rarely that a resetting env would show this with a
   probability below 1e-6); no episode longer than ``max_episode_steps`` (checked only when
   ``num_steps >= max_episode_steps + 2``);
4. determinism: the same keys give bit-identical reset obs, and the same key, state and action bit-identical
   step results, when the compiled functions run again and from a second, fresh trace (compiled only when it
   lowers to a different program than the first).

>>> import purejaxrl_ppo as pjp
>>> pjp.env_problems("CartPole-v1")
[]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.envs.base import ACTION_MASK, ActionSpace, StepResult, observation_spec

#: Observation dtypes the networks accept: what each is for.
OBSERVATION_DTYPES = {
    "float32": "feature vectors",
    "uint8": "images [H, W, C]",
    "int32": "grids, ids",
    "bool": f"{ACTION_MASK} only",
}
#: Fresh resets drawn to tell whether ``obs == final_obs`` at every end means that ``step`` does not reset.
RESET_SAMPLES = 64
#: ... flagged when a resetting env would show it with a probability below this.
AUTO_RESET_LIKELIHOOD = 1e-6
#: What ``step`` must return, by field.
STEP_FIELDS = StepResult._fields


class EnvCheckError(ValueError):
    """An environment does not follow the env protocol; the message has one line per problem."""


def check_env(env: Any, **kwargs: Any) -> None:
    """Raise :class:`EnvCheckError` unless ``env`` (an Env, or a name for :func:`~purejaxrl_ppo.make_env`)
    follows the env protocol. ``kwargs``: those of :func:`env_problems` (``num_envs``, ``num_steps``, ``seed``).

    The message is ``"environment <name> does not follow the env protocol:"`` and one line per problem.
    """
    problems = env_problems(env, **kwargs)
    if problems:
        lines = "\n".join(f"  - {line}" for line in problems)
        raise EnvCheckError(f"environment {env_label(env)} does not follow the env protocol:\n{lines}")


def env_label(env: Any) -> str:
    """A name for ``env`` in messages: the name it was built from, else its class (wrappers around theirs)."""
    if isinstance(env, str):
        return env
    name = type(env).__name__
    inner = getattr(env, "env", None)
    if dataclasses.is_dataclass(env) and inner is not None and hasattr(inner, "reset"):
        return f"{name}({env_label(inner)})"
    return name


def describe_spaces(env: Any) -> str:
    """One line: the observation spec, the action space and the episode limit of ``env`` (for ``check-env``)."""
    spec = observation_spec(env)
    obs = (_describe_struct(spec) if not isinstance(spec, dict)
           else "{" + ", ".join(f"{k!r}: {_describe_struct(v)}" for k, v in spec.items()) + "}")
    space = env.action_space
    if space.multi:
        actions = f"multi-discrete {list(space.nvec)}"
    elif space.discrete:
        actions = f"discrete {space.num_actions}"
    else:
        low, high = min(space.low, default=0.0), max(space.high, default=0.0)
        actions = f"continuous float32{list(space.shape)} in [{low:g}, {high:g}]"
    masked = ", masked" if space.masked else ""
    return f"observation {obs}; actions {actions}{masked}; max_episode_steps {env.max_episode_steps}"


def env_problems(env: Any, num_envs: int = 4, num_steps: int = 64, seed: int = 0) -> list[str]:
    """Every way ``env`` breaks the env protocol, one human-readable line each; ``[]`` when it follows it.

    env: an Env, or a name (built with :func:`~purejaxrl_ppo.make_env`; an unknown name raises ``ValueError``).
    num_envs: environments vmapped (keys from ``seed``). num_steps: steps of the random-action rollout; the
    episode-length check runs only when ``num_steps >= max_episode_steps + 2``.
    """
    if isinstance(env, str):
        from purejaxrl_ppo.core.envs import make_env  # late: the package's __init__ may import this module

        env = make_env(env)
    if num_envs < 1 or num_steps < 1:
        raise ValueError(f"env_problems needs num_envs >= 1 and num_steps >= 1, got {num_envs} and {num_steps}")
    problems: list[str] = []
    spec = _check_spec(env, problems)
    space = _check_action_space(env, problems)
    max_steps = _check_max_episode_steps(env, problems)
    if spec is not None and space is not None:
        _check_mask_spec(spec, space, problems)
        _Rollout(env, spec, space, max_steps, num_envs, num_steps, seed, problems).run()
    return problems


# ----------------------------------------------------------------------------- descriptions
def _describe(shape: tuple[int, ...], dtype: Any) -> str:
    """``"float32[4]"``, ``"bool scalar"``."""
    name = np.dtype(dtype).name
    return f"{name} scalar" if shape == () else f"{name}{list(shape)}"


def _describe_struct(leaf: Any) -> str:
    return _describe(tuple(leaf.shape), leaf.dtype)


def _describe_tree(tree: Any) -> str:
    """How a (batched) value that is not one array or a flat dict of arrays looks."""
    if isinstance(tree, dict):
        return f"a dict with keys {sorted(map(str, tree))}"
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        return "one array"
    return f"a {type(tree).__name__}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0][:300] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _crash(what: str, call: str, err: BaseException) -> str:
    return f"{what}: expected {call} to trace and run, found it raised {_first_line(err)}"


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


# ----------------------------------------------------------------------------- 1. spaces
def _check_spec(env: Any, problems: list[str]) -> Any:
    """The env's observation spec, or None (with a problem line) when it has none usable."""
    try:
        spec = observation_spec(env)
    except Exception as err:  # neither attribute, or a property that raises
        problems.append("observation_spec: expected env.observation_spec (a jax.ShapeDtypeStruct or a dict of them) "
                        f"or env.observation_shape, found neither ({_first_line(err)})")
        return None
    leaves = spec.items() if isinstance(spec, dict) else [(None, spec)]
    bad = [k for k, leaf in leaves if not isinstance(leaf, jax.ShapeDtypeStruct)]
    if (isinstance(spec, dict) and (not spec or not all(isinstance(k, str) for k in spec))) or bad:
        problems.append("observation_spec: expected a jax.ShapeDtypeStruct or a non-empty dict of them with str keys, "
                        f"found {spec!r:.200}")
        return None
    for key, leaf in leaves:
        field = "observation_spec" if key is None else f"observation_spec[{key!r}]"
        dtype = np.dtype(leaf.dtype).name
        allowed = ", ".join(f"{d} ({what})" for d, what in OBSERVATION_DTYPES.items())
        if dtype not in OBSERVATION_DTYPES or (dtype == "bool" and key != ACTION_MASK):
            problems.append(f"{field}: expected one of {allowed}, found {dtype}")
        elif dtype == "uint8" and len(leaf.shape) != 3:
            problems.append(f"{field}: expected uint8 leaves to be images [H, W, C] (ids and grids are int32), "
                            f"found {_describe_struct(leaf)}")
    _check_observation_shape(env, spec, problems)
    return spec


def _check_observation_shape(env: Any, spec: Any, problems: list[str]) -> None:
    """``observation_shape`` is the shape when the observation is one float32 array, else None."""
    if getattr(env, "observation_spec", None) is None:
        return  # the spec is built from observation_shape itself
    shape = getattr(env, "observation_shape", None)
    one_float = not isinstance(spec, dict) and np.dtype(spec.dtype) == np.float32
    if one_float and (shape is None or tuple(shape) != tuple(spec.shape)):
        problems.append(f"observation_shape: expected {tuple(spec.shape)} (the observation is one float32 array), "
                        f"found {shape}")
    elif not one_float and shape is not None:
        problems.append(f"observation_shape: expected None (the observation is not one float32 array), "
                        f"found {shape}")


def _check_action_space(env: Any, problems: list[str]) -> ActionSpace | None:
    """The env's action space, or None (with a problem line) when it is missing or inconsistent."""
    space = getattr(env, "action_space", None)
    if not isinstance(space, ActionSpace):
        problems.append(f"action_space: expected an ActionSpace, found {type(space).__name__}")
        return None
    if space.discrete:
        if not isinstance(space.num_actions, (int, np.integer)) or space.num_actions < 1:
            problems.append(f"action_space.num_actions: expected an int >= 1, found {space.num_actions!r}")
            return None
        return space
    shape = tuple(space.shape)
    size = math.prod(shape) if shape else 0
    if not shape or any(not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        problems.append(f"action_space.shape: expected a non-empty tuple of ints >= 1 (continuous), found {shape}")
        return None
    if len(space.low) != size or len(space.high) != size:
        problems.append(f"action_space.low/high: expected {size} bounds each (one per dimension of {shape}), found "
                        f"{len(space.low)} and {len(space.high)}")
        return None
    if any(not lo <= hi for lo, hi in zip(space.low, space.high)):
        problems.append(f"action_space.low/high: expected low <= high, found low={space.low} high={space.high}")
        return None
    return space


def _check_max_episode_steps(env: Any, problems: list[str]) -> int | None:
    try:
        value = env.max_episode_steps
    except AttributeError:
        problems.append("max_episode_steps: expected a positive int (agent steps after which an episode is "
                        "truncated), found no such attribute")
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        problems.append(f"max_episode_steps: expected a positive int, found {value!r} ({type(value).__name__})")
        return None
    return int(value)


def _check_mask_spec(spec: Any, space: ActionSpace, problems: list[str]) -> None:
    has_mask = isinstance(spec, dict) and ACTION_MASK in spec
    if not space.masked:
        if has_mask:
            problems.append(f"observation_spec[{ACTION_MASK!r}]: expected no {ACTION_MASK!r} entry "
                            f"(action_space.masked is False), found {_describe_struct(spec[ACTION_MASK])}")
        return
    if not has_mask:
        found = f"keys {sorted(spec)}" if isinstance(spec, dict) else "one array"
        problems.append(f"observation_spec: expected a dict with an {ACTION_MASK!r} entry (action_space.masked is "
                        f"True), found {found}")
        return
    mask = spec[ACTION_MASK]
    if tuple(mask.shape) != (space.num_actions,) or np.dtype(mask.dtype) != np.bool_:
        what = "sum(nvec)" if space.multi else "num_actions"
        problems.append(f"observation_spec[{ACTION_MASK!r}]: expected bool[{space.num_actions}] ({what}), found "
                        f"{_describe_struct(mask)}")


# ----------------------------------------------------------------------------- 2-4. reset, step, rollout
def _leaves(obs: Any) -> list[tuple[str, Any]]:
    """``[(label, leaf)]`` of an observation: ``[("", array)]`` or ``[("['key']", array), ...]``."""
    if isinstance(obs, dict):
        return [(f"[{k!r}]", obs[k]) for k in sorted(obs)]
    return [("", obs)]


def _spec_mismatches(spec: Any, obs: Any) -> list[tuple[str, str, str, bool]]:
    """``[(field, expected, found, blocking)]`` where a batched ``obs`` differs from ``spec``; ``blocking``: the
    structure or a shape differs (not only a dtype), so the rollout's checks cannot read it."""
    if isinstance(spec, dict) != isinstance(obs, dict) or (not isinstance(spec, dict) and not _is_array(obs)):
        expected = f"a dict with keys {sorted(spec)}" if isinstance(spec, dict) else "one array"
        return [("observation", expected, _describe_tree(obs), True)]
    if isinstance(spec, dict):
        if set(spec) != set(obs) or not all(_is_array(obs[k]) for k in obs):
            return [("observation", f"a dict with keys {sorted(spec)}", f"a dict with keys {sorted(map(str, obs))}",
                     True)]
        pairs = [(f"observation[{k!r}]", spec[k], obs[k]) for k in sorted(spec)]
    else:
        pairs = [("observation", spec, obs)]
    out = []
    for field, leaf, value in pairs:
        shape, dtype = tuple(value.shape[1:]), np.dtype(value.dtype)
        if (shape, dtype) != (tuple(leaf.shape), np.dtype(leaf.dtype)):
            out.append((field, _describe_struct(leaf), _describe(shape, dtype), shape != tuple(leaf.shape)))
    return out


def _row(leaves: list[np.ndarray], i: int) -> bytes:
    """Environment ``i``'s observation as bytes (bit-exact comparisons)."""
    return b"".join(np.ascontiguousarray(leaf[i]).tobytes() for leaf in leaves)


def _nonfinite(leaves: list[np.ndarray]) -> tuple[str, int] | None:
    """``("NaN" or "inf", env index)`` of the first non-finite float entry, or None."""
    for leaf in leaves:
        if not np.issubdtype(leaf.dtype, np.floating):
            continue
        flat = leaf.reshape(leaf.shape[0], -1) if leaf.ndim else leaf.reshape(1, 1)
        bad = ~np.isfinite(flat)
        if bad.any():
            env = int(np.argwhere(bad)[0][0])
            return ("NaN" if np.isnan(flat[env]).any() else "inf"), env
    return None


def _sample_actions(space: ActionSpace, key: jax.Array, mask: jax.Array | None, num_envs: int) -> jax.Array:
    """Random valid actions ``[num_envs, *action_shape]``: uniform over the allowed choices of each factor
    (``mask``: ``bool [num_envs, num_actions]`` or None), or uniform in ``[low, high]`` (a standard normal
    where a bound is infinite)."""
    if space.discrete:
        logits = jnp.zeros((num_envs, space.num_actions)) if mask is None else jnp.where(mask, 0.0, -jnp.inf)
        if not space.multi:
            return jax.random.categorical(key, logits).astype(jnp.int32)
        starts = np.cumsum((0,) + space.nvec)
        keys = jax.random.split(key, len(space.nvec))
        return jnp.stack([jax.random.categorical(keys[k], logits[:, starts[k]:starts[k + 1]])
                          for k in range(len(space.nvec))], axis=1).astype(jnp.int32)
    shape = (num_envs, *space.shape)
    low = np.asarray(space.low, np.float32).reshape(space.shape)
    high = np.asarray(space.high, np.float32).reshape(space.shape)
    finite = np.isfinite(low) & np.isfinite(high)
    key_u, key_n = jax.random.split(key)
    uniform = jax.random.uniform(key_u, shape, jnp.float32, np.where(finite, low, 0.0), np.where(finite, high, 1.0))
    return jnp.where(finite, uniform, jax.random.normal(key_n, shape, jnp.float32))


def _segments_without_choice(space: ActionSpace, mask: np.ndarray) -> tuple[int, int] | None:
    """``(env, factor)`` of the first state whose mask allows no action in a factor, or None."""
    nvec = space.nvec or (space.num_actions,)
    start = 0
    for factor, n in enumerate(nvec):
        empty = ~mask[:, start:start + n].any(axis=1)
        if empty.any():
            return int(np.argmax(empty)), factor
        start += n
    return None


class _Rollout:
    """Steps 2-4: reset and step compiled over ``num_envs``, the random-action rollout, determinism."""

    def __init__(self, env, spec, space, max_steps, num_envs, num_steps, seed, problems):
        self.env, self.spec, self.space, self.max_steps = env, spec, space, max_steps
        self.num_envs, self.num_steps, self.problems = num_envs, num_steps, problems
        self.key = jax.random.PRNGKey(seed)
        self.mismatches: dict[tuple[str, str, str], list[str]] = {}  # (field, expected, found) -> where
        self.first: dict[str, str] = {}  # problem kind -> line (the first occurrence in the rollout)

    # -- the checks on shapes and dtypes
    def _compare_obs(self, where: str, obs: Any) -> bool:
        """Record how ``obs`` differs from the spec; False when its structure or shapes do."""
        ok = True
        for field, expected, found, blocking in _spec_mismatches(self.spec, obs):
            self.mismatches.setdefault((field, expected, found), []).append(where)
            ok = ok and not blocking
        return ok

    def _flush_mismatches(self) -> None:
        for (field, expected, found), where in self.mismatches.items():
            self.problems.append(f"{field} ({', '.join(where)}): expected {expected} (observation_spec), "
                                 f"found {found}")
        self.mismatches.clear()

    def _check_scalars(self, result: Any) -> bool:
        ok = True
        for name, dtype in (("reward", np.float32), ("terminated", np.bool_), ("truncated", np.bool_)):
            value = getattr(result, name)
            if not _is_array(value):
                self.problems.append(f"{name}: expected a {np.dtype(dtype).name} scalar, found {type(value).__name__}")
                ok = False
                continue
            found = (tuple(value.shape[1:]), np.dtype(value.dtype))
            if found != ((), np.dtype(dtype)):
                self.problems.append(f"{name}: expected a {np.dtype(dtype).name} scalar, found {_describe(*found)}")
                ok = ok and found[0] == ()
        if not isinstance(result.info, dict):
            self.problems.append(f"info: expected a dict, found {type(result.info).__name__}")
        return ok

    # -- the run
    def run(self) -> None:
        keys = jax.random.split(self.key, self.num_envs)
        reset = jax.jit(jax.vmap(self.env.reset))
        try:
            out = reset(keys)
        except Exception as err:
            self.problems.append(_crash("reset", f"jax.jit(jax.vmap(env.reset)) over {self.num_envs} keys", err))
            return
        if not isinstance(out, tuple) or len(out) != 2:
            self.problems.append(f"reset: expected (obs, state), found {_describe_tree(out)}")
            return
        obs, state = out
        shapes_ok = self._compare_obs("reset obs", obs)
        mask = self._mask(obs)
        sample = jax.jit(lambda key, mask: _sample_actions(self.space, key, mask, self.num_envs))
        step = jax.jit(jax.vmap(self.env.step))
        self.key, act_key, step_key = jax.random.split(self.key, 3)
        action, step_keys = sample(act_key, mask), jax.random.split(step_key, self.num_envs)
        try:
            result = step(step_keys, state, action)
        except Exception as err:
            self._flush_mismatches()
            self.problems.append(_crash("step", f"jax.jit(jax.vmap(env.step)) over {self.num_envs} envs", err))
            return
        if not all(hasattr(result, name) for name in STEP_FIELDS):
            self._flush_mismatches()
            self.problems.append(f"step: expected a StepResult ({', '.join(STEP_FIELDS)}), found "
                                 f"{type(result).__name__}")
            return
        shapes_ok &= self._compare_obs("step obs", result.obs)
        shapes_ok &= self._compare_obs("step final_obs", result.final_obs)
        self._flush_mismatches()
        shapes_ok &= self._check_scalars(result)
        if shapes_ok:
            self._rollout(obs, mask, result, sample, step, reset)
        self._check_determinism(reset, step, keys, obs, (step_keys, state, action), result)

    def _mask(self, obs: Any) -> jax.Array | None:
        """The batched action mask to sample with, where the env has a usable one."""
        if not self.space.masked or not isinstance(obs, dict) or ACTION_MASK not in obs:
            return None
        mask = obs[ACTION_MASK]
        if not _is_array(mask) or tuple(mask.shape) != (self.num_envs, self.space.num_actions):
            return None
        return jnp.asarray(mask, bool)

    def _note(self, kind: str, line: str) -> None:
        """Keep the first occurrence of each kind of rollout problem."""
        self.first.setdefault(kind, line)

    def _check_state(self, where: str, obs_leaves: list[np.ndarray], mask: jax.Array | None, t: str) -> None:
        bad = _nonfinite(obs_leaves)
        if bad:
            self._note("nonfinite obs", f"observation ({where}): expected finite values, found {bad[0]} at {t} "
                                        f"(env {bad[1]})")
        if mask is not None:
            empty = _segments_without_choice(self.space, np.asarray(mask))
            if empty:
                factor = f", factor {empty[1]}" if self.space.multi else ""
                self._note("no valid action", f"{ACTION_MASK}: expected at least one allowed action in every state"
                                              f"{' (per factor)' if self.space.multi else ''}, found a state with no "
                                              f"valid action at {t} (env {empty[0]}{factor})")

    def _rollout(self, obs0, mask, result, sample, step, reset) -> None:
        """The semantic checks over ``num_steps`` steps of random valid actions (``result``: the first step's)."""
        n = self.num_envs
        self._check_state("reset obs", [np.asarray(x) for _, x in _leaves(obs0)], mask, "reset")
        lengths = np.zeros(n, np.int64)
        ends, end_rows = 0, []  # end_rows: final_obs of every end, while obs == final_obs at each
        check_lengths = self.max_steps is not None and self.num_steps >= self.max_steps + 2
        for t in range(self.num_steps):
            if t > 0:
                self.key, act_key, step_key = jax.random.split(self.key, 3)
                result = step(jax.random.split(step_key, n), result.state, sample(act_key, mask))
            obs, final = ([np.asarray(x) for _, x in _leaves(o)] for o in (result.obs, result.final_obs))
            reward = np.asarray(result.reward)
            term, trunc = (np.asarray(x).astype(bool) for x in (result.terminated, result.truncated))
            at = f"step {t}"
            mask = self._mask(result.obs)
            self._check_state("step obs", obs, mask, at)
            self._check_state("step final_obs", final, None, at)
            bad = _nonfinite([reward])
            if bad:
                self._note("nonfinite reward", f"reward: expected finite values, found {bad[0]} at {at} (env {bad[1]})")
            both = np.flatnonzero(term & trunc)
            if both.size:
                self._note("both", "terminated and truncated: expected never both true (truncated is a time-limit end "
                                   f"that is not terminal), found both true at {at} (env {both[0]})")
            done = term | trunc
            lengths += 1
            for i in range(n):
                same = _row(obs, i) == _row(final, i)
                if not done[i] and not same:
                    self._note("final_obs", "final_obs: expected final_obs == obs where the episode did not end, "
                                            f"found them different at {at} (env {i})")
                if done[i]:
                    ends += 1
                    if same and len(end_rows) == ends - 1:
                        end_rows.append(_row(final, i))
                elif check_lengths and lengths[i] > self.max_steps:
                    self._note("length", f"episode length: expected terminated or truncated after at most "
                                         f"max_episode_steps = {self.max_steps} steps, found an episode still running "
                                         f"after {lengths[i]} steps ({at}, env {i})")
            lengths[done] = 0
        if ends >= 2 and len(end_rows) == ends and self._surely_not_reset(end_rows, reset):
            self.first.pop("length", None)  # a consequence: episodes that never reset run on
            self._note("auto-reset", "auto-reset: expected step to return the next episode's first observation as obs "
                                     "(and the ended one's last as final_obs) when an episode ends, found obs == "
                                     f"final_obs at every one of {ends} ends")
        self.problems.extend(self.first.values())

    def _surely_not_reset(self, end_rows: list[bytes], reset) -> bool:
        """Whether ``obs == final_obs`` at every end (``end_rows``: the final observations) is too unlikely
        for an env that resets: a correct env shows ``final_obs`` again only when its reset draws it, so the
        chance of all ends is the product of each final observation's frequency among fresh resets
        (estimated from :data:`RESET_SAMPLES` resets, add-one smoothed). Flagged below
        :data:`AUTO_RESET_LIKELIHOOD`: a constant reset that every end equals, or a reset that draws the
        final observations often, is never flagged."""
        counts: dict[bytes, int] = {}
        key = jax.random.fold_in(self.key, 1)
        for _ in range(-(-RESET_SAMPLES // self.num_envs)):
            key, batch_key = jax.random.split(key)
            obs, _ = reset(jax.random.split(batch_key, self.num_envs))
            leaves = [np.asarray(x) for _, x in _leaves(obs)]
            for i in range(self.num_envs):
                row = _row(leaves, i)
                counts[row] = counts.get(row, 0) + 1
        total = sum(counts.values())
        likelihood = math.prod((counts.get(row, 0) + 1) / (total + 1) for row in end_rows)
        return likelihood < AUTO_RESET_LIKELIHOOD

    def _check_determinism(self, reset, step, keys, obs, step_args, result) -> None:
        """The same inputs give the same bits from the compiled reset and step run again (host callbacks,
        stateful runtime) and from a second, fresh trace of each (Python state read while tracing). A fresh
        trace that lowers to the same program as the first is not compiled again: it would give the same bits."""
        fields = ("obs", "reward", "terminated", "truncated", "final_obs")
        try:
            runs = {"reset": [reset(keys)[0]], "step": [step(*step_args)]}
            for name, first, args in (("reset", reset, (keys,)), ("step", step, step_args)):
                fresh = jax.jit(jax.vmap(getattr(self.env, name)))
                if fresh.lower(*args).as_text() != first.lower(*args).as_text():
                    out = fresh(*args)
                    runs[name].append(out[0] if name == "reset" else out)
        except Exception as err:
            self.problems.append(_crash("determinism", "a second run and a second trace of reset and step", err))
            return
        if not all(_same_bits(obs, again) for again in runs["reset"]):
            self.problems.append("determinism: expected the same keys to give bit-identical reset obs in two separate "
                                 "jitted calls, found different obs")
        differ = [name for name in fields
                  if not all(_same_bits(getattr(result, name), getattr(again, name)) for again in runs["step"])]
        if differ:
            self.problems.append("determinism: expected the same key, state and action to give bit-identical step "
                                 f"results in two separate jitted calls, found different {', '.join(differ)}")


def _same_bits(a: Any, b: Any) -> bool:
    la, lb = jax.tree_util.tree_flatten(a), jax.tree_util.tree_flatten(b)
    if la[1] != lb[1]:
        return False
    return all(np.asarray(x).dtype == np.asarray(y).dtype and np.asarray(x).shape == np.asarray(y).shape
               and np.asarray(x).tobytes() == np.asarray(y).tobytes() for x, y in zip(la[0], lb[0]))


__all__ = ["EnvCheckError", "check_env", "describe_spaces", "env_label", "env_problems"]
