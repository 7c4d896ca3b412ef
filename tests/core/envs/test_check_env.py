"""``check_env`` / ``env_problems`` (core/envs/check.py): registered envs pass, and each deliberately broken toy
env (a correct pure-JAX corridor, broken one way at a time) gives exactly the one expected problem line."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from purejaxrl_ppo.cli import main
from purejaxrl_ppo.core.envs.base import ACTION_MASK, ActionSpace, StepResult
from purejaxrl_ppo.core.envs.check import EnvCheckError, check_env, env_problems


# ----------------------------------------------------------------------------- a toy env written to the protocol
@struct.dataclass
class CorridorState:
    position: jax.Array  # int32 scalar, 0 .. length - 1 (the goal)
    time: jax.Array  # int32 scalar, steps taken in this episode
    noise: jax.Array  # float32 scalar drawn at reset (makes reset observations differ)


@dataclasses.dataclass(frozen=True)
class Corridor:
    """Walk left (0) or right (1) to the goal at the right end; +1 there (terminated), -0.1 per other step,
    truncated after ``max_episode_steps``. obs: float32 [position / (length - 1), noise]."""

    length: int = 5
    max_episode_steps: int = 8
    observation_shape: tuple[int, ...] = (2,)
    action_space: ActionSpace = ActionSpace(discrete=True, num_actions=2)

    def observe(self, state: CorridorState):
        return jnp.stack([state.position / (self.length - 1), state.noise]).astype(jnp.float32)

    def reset(self, key):
        position_key, noise_key = jax.random.split(key)
        state = CorridorState(jax.random.randint(position_key, (), 0, self.length - 1), jnp.int32(0),
                              jax.random.uniform(noise_key))
        return self.observe(state), state

    def move(self, state: CorridorState, action) -> CorridorState:
        position = jnp.clip(state.position + 2 * action - 1, 0, self.length - 1)
        return state.replace(position=position, time=state.time + 1)

    def ends(self, state: CorridorState):
        terminated = state.position == self.length - 1
        return terminated, (state.time >= self.max_episode_steps) & ~terminated

    def step(self, key, state, action):
        state = self.move(state, action)
        terminated, truncated = self.ends(state)
        final_obs = self.observe(state)
        reset_obs, reset_state = self.reset(key)
        done = terminated | truncated
        return StepResult(
            obs=jax.tree_util.tree_map(lambda r, o: jnp.where(done, r, o), reset_obs, final_obs),
            state=jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), reset_state, state),
            reward=jnp.where(terminated, 1.0, -0.1).astype(jnp.float32),
            terminated=terminated, truncated=truncated, final_obs=final_obs, info={},
        )


@dataclasses.dataclass(frozen=True)
class MaskedCorridor(Corridor):
    """The corridor with an action mask: no left at the left end. obs: {"position": float32[2], "action_mask"}."""

    observation_shape: None = None
    action_space: ActionSpace = ActionSpace(discrete=True, num_actions=2, masked=True)

    @property
    def observation_spec(self):
        return {"position": jax.ShapeDtypeStruct((2,), jnp.float32),
                ACTION_MASK: jax.ShapeDtypeStruct((self.action_space.num_actions,), jnp.bool_)}

    def mask(self, state):
        return jnp.stack([state.position > 0, jnp.bool_(True)])

    def observe(self, state):
        return {"position": super().observe(state), ACTION_MASK: self.mask(state)}


@dataclasses.dataclass(frozen=True)
class MultiCorridor(MaskedCorridor):
    """Multi-discrete: direction (left, right) x stride (1, 2); mask per factor (no left at the left end)."""

    action_space: ActionSpace = ActionSpace.multi_discrete((2, 2), masked=True)

    def mask(self, state):
        return jnp.stack([state.position > 0, jnp.bool_(True), jnp.bool_(True), state.position < self.length - 2])

    def move(self, state, action):
        position = jnp.clip(state.position + (2 * action[0] - 1) * (1 + action[1]), 0, self.length - 1)
        return state.replace(position=position, time=state.time + 1)


# ----------------------------------------------------------------------------- broken variants
class IntObservation(Corridor):
    def observe(self, state):
        return (super().observe(state) * 100).astype(jnp.int32)  # declared float32 (observation_shape)


@dataclasses.dataclass(frozen=True)
class ImageDeclaredFloat(Corridor):
    observation_shape: tuple[int, ...] = (2, 2, 1)

    @property
    def observation_spec(self):
        return jax.ShapeDtypeStruct((2, 2, 1), jnp.float32)

    def observe(self, state):
        return jnp.broadcast_to(state.position.astype(jnp.uint8), (2, 2, 1))


class DictAfterStep(Corridor):
    def step(self, key, state, action):
        result = super().step(key, state, action)
        return result._replace(obs={"features": result.obs}, final_obs={"features": result.final_obs})


class VectorReward(Corridor):
    def step(self, key, state, action):
        result = super().step(key, state, action)
        return result._replace(reward=result.reward[None])


class TruncatedAndTerminated(Corridor):
    def ends(self, state):
        terminated, truncated = super().ends(state)
        return terminated, truncated | terminated


class NoAutoReset(Corridor):
    def step(self, key, state, action):
        state = self.move(state, action)
        terminated, truncated = self.ends(state)
        obs = self.observe(state)
        return StepResult(obs, state, jnp.float32(0.0), terminated, truncated, obs, {})


class NeverEnds(Corridor):
    def ends(self, state):
        return jnp.bool_(False), jnp.bool_(False)


class NaNReward(Corridor):
    def step(self, key, state, action):
        result = super().step(key, state, action)
        return result._replace(reward=result.reward * jnp.nan)


_HOST_RNG = np.random.default_rng(0)


class HostRandomReward(Corridor):
    """Draws its reward from a host RNG: jittable, vmappable, and different at every call."""

    def step(self, key, state, action):
        result = super().step(key, state, action)
        noise = jax.pure_callback(lambda p: _HOST_RNG.random(np.shape(p)).astype(np.float32),
                                  jax.ShapeDtypeStruct((), jnp.float32), state.position, vmap_method="sequential")
        return result._replace(reward=result.reward + noise)


_TRACES = itertools.count()


class TraceCounterReward(Corridor):
    """Bakes a Python counter into its program at every trace: each compilation gives other rewards."""

    def step(self, key, state, action):
        result = super().step(key, state, action)
        return result._replace(reward=result.reward + next(_TRACES))


class KeyIgnoringReset(Corridor):
    """Always the same start (the key is ignored): allowed, and must not be flagged."""

    def reset(self, key):
        return super().reset(jax.random.PRNGKey(0))


class NoAutoResetFixedStart(NoAutoReset, KeyIgnoringReset):
    pass


class PythonBranchStep(Corridor):
    def step(self, key, state, action):
        if state.position > 2:  # a Python branch on a traced value: fails to trace
            pass
        return super().step(key, state, action)


@dataclasses.dataclass(frozen=True)
class MaskWithoutChoice(MaskedCorridor):
    def mask(self, state):
        return jnp.stack([state.position > 0, state.position > 0])  # nothing allowed at the left end


@dataclasses.dataclass(frozen=True)
class MaskTooLong(MaskedCorridor):
    @property
    def observation_spec(self):
        return {**super().observation_spec, ACTION_MASK: jax.ShapeDtypeStruct((3,), jnp.bool_)}

    def mask(self, state):
        return jnp.stack([state.position > 0, jnp.bool_(True), jnp.bool_(True)])


@dataclasses.dataclass(frozen=True)
class MultiFactorWithoutChoice(MultiCorridor):
    def mask(self, state):
        return jnp.stack([jnp.bool_(True), jnp.bool_(True), state.position > 0, state.position > 0])


@dataclasses.dataclass(frozen=True)
class NoEpisodeLimit:
    """Forwards everything but ``max_episode_steps``."""

    env: Corridor = Corridor()
    observation_shape: tuple[int, ...] = (2,)
    action_space: ActionSpace = ActionSpace(discrete=True, num_actions=2)

    def reset(self, key):
        return self.env.reset(key)

    def step(self, key, state, action):
        return self.env.step(key, state, action)


# ----------------------------------------------------------------------------- correct envs
@pytest.mark.timeout(120)
@pytest.mark.parametrize("env", [Corridor(), MaskedCorridor(), MultiCorridor(), KeyIgnoringReset()],
                         ids=lambda env: type(env).__name__)
def test_a_correct_toy_env_has_no_problems(env):
    assert env_problems(env) == []
    assert check_env(env) is None


BROKEN = [
    (dataclasses.replace(Corridor(), observation_shape=(3,)),
     "observation (reset obs, step obs, step final_obs): expected float32[3] (observation_spec), found float32[2]"),
    (IntObservation(),
     "observation (reset obs, step obs, step final_obs): expected float32[2] (observation_spec), found int32[2]"),
    (ImageDeclaredFloat(), "observation (reset obs, step obs, step final_obs): expected float32[2, 2, 1] "
                           "(observation_spec), found uint8[2, 2, 1]"),
    (DictAfterStep(), "observation (step obs, step final_obs): expected one array (observation_spec), "
                      "found a dict with keys ['features']"),
    (VectorReward(), "reward: expected a float32 scalar, found float32[1]"),
    (TruncatedAndTerminated(), "terminated and truncated: expected never both true"),
    (NoAutoReset(), "auto-reset: expected step to return the next episode's first observation as obs"),
    (NoAutoResetFixedStart(), "auto-reset: expected step to return the next episode's first observation as obs"),
    (NeverEnds(), "episode length: expected terminated or truncated after at most max_episode_steps = 8 steps, "
                  "found an episode still running after 9 steps (step 8, env 0)"),
    (NaNReward(), "reward: expected finite values, found NaN at step 0 (env 0)"),
    (HostRandomReward(), "determinism: expected the same key, state and action to give bit-identical step results "
                         "in two separate jitted calls, found different reward"),
    (TraceCounterReward(), "determinism: expected the same key, state and action to give bit-identical step "
                           "results in two separate jitted calls, found different reward"),
    (PythonBranchStep(), "step: expected jax.jit(jax.vmap(env.step)) over 4 envs to trace and run, found it raised "
                         "TracerBoolConversionError"),
    (MaskWithoutChoice(), "action_mask: expected at least one allowed action in every state, found a state with no "
                          "valid action"),
    (MultiFactorWithoutChoice(), "action_mask: expected at least one allowed action in every state (per factor), "
                                 "found a state with no valid action"),
    (MaskTooLong(), "observation_spec['action_mask']: expected bool[2] (num_actions), found bool[3]"),
    (NoEpisodeLimit(), "max_episode_steps: expected a positive int (agent steps after which an episode is truncated), "
                       "found no such attribute"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env, line", BROKEN, ids=[type(env).__name__ for env, _ in BROKEN])
def test_a_broken_env_gives_exactly_its_problem_line(env, line):
    problems = env_problems(env)
    assert len(problems) == 1 and line in problems[0], problems


@pytest.mark.timeout(60)
def test_check_env_raises_one_line_per_problem():
    env = dataclasses.replace(VectorReward(), observation_shape=(3,))
    with pytest.raises(EnvCheckError) as info:
        check_env(env, num_steps=4)
    lines = str(info.value).splitlines()
    assert lines[0] == "environment VectorReward does not follow the env protocol:"
    assert len(lines) == 3 and "observation" in lines[1] and "reward" in lines[2]
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="unknown environment 'CartPol-v1'"):
        check_env("CartPol-v1")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name, num_steps", [  # the default run: CartPole and a masked one; all in test-all
    ("CartPole-v1", 64), pytest.param("Pendulum-v1", 202, marks=pytest.mark.heavy),
    pytest.param("Breakout-MinAtar", 16, marks=pytest.mark.heavy), ("CartPole-v1?mask=velocity", 32)])
def test_registered_envs_pass(name, num_steps):
    assert pjp.check_env(name, num_steps=num_steps) is None  # num_steps 202: Pendulum's 200-step limit is checked


@pytest.mark.heavy  # compiling Brax physics takes about a minute here (make test-all)
@pytest.mark.timeout(600)
def test_brax_inverted_pendulum_passes():
    assert env_problems("brax/inverted_pendulum", num_envs=2, num_steps=8) == []


@pytest.mark.timeout(120)
def test_cli_check_env(capsys):
    assert main(["check-env", "--env", "CartPole-v1", "--num-steps", "16"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: CartPole-v1 follows the env protocol") and "discrete 2" in out
    assert main(["check-env", "--env", "CartPol-v1"]) == 2
    assert "did you mean 'CartPole-v1'?" in capsys.readouterr().err
    pjp.register_env("test-check-env-vector-reward", VectorReward)
    assert main(["check-env", "--env", "test-check-env-vector-reward", "--num-steps", "4"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "environment test-check-env-vector-reward does not follow the env protocol:",
        "  - reward: expected a float32 scalar, found float32[1]"]
