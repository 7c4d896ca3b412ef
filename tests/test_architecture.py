"""The architecture's seams: the device side never imports the host side, algorithms and
networks register themselves and are reached only through their registries and protocols,
an algorithm may override the whole iteration, and old module paths fail with a clear error."""

import ast
import dataclasses
import importlib
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core import algos as algos_registry
from purejaxrl_ppo.core import networks as networks_registry
from purejaxrl_ppo.core.config import COUNT, POSITIVE, BaseConfig, field
from purejaxrl_ppo.core.networks import ActorCritic, policy_on_transitions

PACKAGE = Path(pjp.__file__).parent
HOST_PACKAGES = ("purejaxrl_ppo.launch", "purejaxrl_ppo.runs", "purejaxrl_ppo.analysis", "purejaxrl_ppo.cli")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_the_host_side():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(HOST_PACKAGES))
        for path in (PACKAGE / "core").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


#: The host side's layers, lowest first: a module imports its own package and the layers below it, never a layer
#: above or a package beside it (``launch`` and ``runs`` are peers). ``analysis`` is numerics and plots, except
#: ``analysis.render``, which reads a run's policy file (``runs``) and is used by the driver for a run's video.
LAYERS = {
    "core": 0, "platform": 0, "_moved": 0,
    "analysis": 1,
    "launch": 2, "runs": 2,
    "analysis.render": 3,
    "driver": 4,
    "cli": 5,
    "__init__": 6, "__main__": 6,  # the package's public API and entry point re-export every layer
}


def _layer_of(module: str) -> tuple[str, int]:
    """``(package, layer)`` of ``purejaxrl_ppo.<module path>``: the longest prefix listed in :data:`LAYERS`."""
    parts = module.split(".")[1:] or ["__init__"]
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS:
            return name, LAYERS[name]
    raise AssertionError(f"{module} is in no layer of LAYERS")


def _climbs(module: str, imported: set[str]) -> list[str]:
    """The imports of ``module`` that reach a layer above its own or a package beside it in the same layer."""
    package, layer = _layer_of(module)
    found = []
    for name in sorted(imported):
        if not name.startswith("purejaxrl_ppo.") or name == "purejaxrl_ppo":
            continue
        target, target_layer = _layer_of(name)
        if target_layer > layer or (target_layer == layer and target.split(".")[0] != package.split(".")[0]):
            found.append(f"{module} imports {name}")
    return found


def test_no_module_imports_a_layer_above_or_beside_its_own():
    """core <- analysis <- launch | runs <- driver <- cli: the durable-run driver sits above both the programs
    (launch) and the files (runs), and nothing below it reaches up (lazy imports inside functions count too)."""
    climbs = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        module = ".".join(("purejaxrl_ppo", *(rel.parts[:-1] if rel.name == "__init__" else rel.parts)))
        climbs += _climbs(module, _imports(path))
    assert climbs == []


@pytest.mark.parametrize("module, imported, climbs", [
    ("purejaxrl_ppo.runs.checkpoint", "purejaxrl_ppo.launch.layout", True),  # beside (the slip this test guards)
    ("purejaxrl_ppo.launch.chunked", "purejaxrl_ppo.runs.provenance", True),
    ("purejaxrl_ppo.runs.rundir", "purejaxrl_ppo.driver.run", True),  # up
    ("purejaxrl_ppo.core.loop", "purejaxrl_ppo.analysis.stats", True),
    ("purejaxrl_ppo.analysis.stats", "purejaxrl_ppo.runs.sinks", True),
    ("purejaxrl_ppo.driver.run", "purejaxrl_ppo.cli.commands", True),
    ("purejaxrl_ppo.driver.run", "purejaxrl_ppo.launch.chunked", False),  # down
    ("purejaxrl_ppo.driver.outputs", "purejaxrl_ppo.analysis.render", False),
    ("purejaxrl_ppo.analysis.render", "purejaxrl_ppo.runs.policy_files", False),
    ("purejaxrl_ppo.runs.sinks", "purejaxrl_ppo.analysis.stats", False),
    ("purejaxrl_ppo.runs.rundir", "purejaxrl_ppo.runs.run_files", False),  # its own package
])
def test_the_layer_check_tells_a_climb_from_a_descent(module, imported, climbs):
    assert bool(_climbs(module, {imported})) is climbs


def test_nothing_outside_an_algorithm_folder_names_an_algorithm_class():
    """Algorithms are listed by the registry alone: no module outside core/algos/<name>/ imports PPO or TRPO
    by name except the package's public re-export."""
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[:2] == ("core", "algos") and len(rel.parts) > 3 or rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        imported = _imports(path)
        assert not any(n.startswith(("purejaxrl_ppo.core.algos.ppo", "purejaxrl_ppo.core.algos.trpo")) for n in imported), rel
    for path in (PACKAGE.parent / "benchmarks").glob("*.py"):
        assert "hasattr(config" not in path.read_text(), path


def test_registries_find_every_folder():
    assert set(pjp.registered_algorithms()) == {"ppo", "trpo"}
    assert pjp.registered_algorithms()["ppo"].config_class is pjp.PPOConfig
    assert "mlp" in pjp.registered_networks()
    with pytest.raises(pjp.ConfigError, match="algo must be one of"):
        pjp.config_from_dict({"algo": "a3c"})
    with pytest.raises(pjp.ConfigError, match="policy must be one of"):
        pjp.PPOConfig(policy="transformer-xl")


@pytest.mark.parametrize("old, new", [("purejaxrl_ppo.sharding", "purejaxrl_ppo.launch.layout"),
                                      ("purejaxrl_ppo.study_stats", "purejaxrl_ppo.analysis.study"),
                                      ("purejaxrl_ppo.train", "purejaxrl_ppo.core.loop"),
                                      ("purejaxrl_ppo.runs.durable", "purejaxrl_ppo.driver.control")])
def test_old_module_paths_name_their_new_place(old, new):
    with pytest.raises(ModuleNotFoundError, match=new.replace(".", r"\.")):
        importlib.import_module(old)


# ----------------------------------------------------------------------------- a network that renames its params
@dataclasses.dataclass(frozen=True)
class RenamedActorCritic(ActorCritic):
    """The MLP with params stored as {"pi", "vf"}: any code that reads params["actor"] or
    params["critic"] instead of going through the Network protocol fails with a KeyError."""

    def init(self, key):
        params = super().init(key)
        return {"pi": params["actor"], "vf": params["critic"]}

    def _inner(self, params):
        return {"actor": params["pi"], "critic": params["vf"]}

    def apply(self, params, carry, obs, reset):
        return super().apply(self._inner(params), carry, obs, reset)

    def policy(self, params, carry, obs, reset):
        return super().policy(self._inner(params), carry, obs, reset)

    def value(self, params, carry, obs, reset):
        return super().value(self._inner(params), carry, obs, reset)

    def policy_params(self, params):
        return params["pi"]

    def with_policy_params(self, params, policy_params):
        return {**params, "pi": policy_params}

    def value_params(self, params):
        return params["vf"]

    def with_value_params(self, params, value_params):
        return {**params, "vf": value_params}


@pytest.fixture
def renamed_network():
    @networks_registry.register_network("test_renamed_mlp")
    def factory(config, action_space, observation_shape):
        return RenamedActorCritic(observation_shape, action_space, tuple(config.hidden_sizes), config.activation,
                                  config.action_squash)

    yield "test_renamed_mlp"
    networks_registry._NETWORKS.pop("test_renamed_mlp")


TINY = dict(num_envs=2, num_steps=8, total_timesteps=2 * 8 * 3, hidden_sizes=(8,))


@pytest.mark.parametrize("algo, env", [  # each algorithm and each action kind in CI; all four in make test-all
    ("ppo", "CartPole-v1"), pytest.param("trpo", "CartPole-v1", marks=pytest.mark.heavy),
    pytest.param("ppo", "Pendulum-v1", marks=pytest.mark.heavy), ("trpo", "Pendulum-v1")])
def test_every_policy_evaluation_goes_through_the_network_protocol(renamed_network, algo, env):
    """A network with other parameter names trains (rollout, bootstrap, update, evaluation) and equals the MLP."""
    extra = {"num_minibatches": 2} if algo == "ppo" else {"critic_minibatches": 2, "fisher_subsample": 2}
    base = pjp.config_from_dict({"algo": algo, "env_name": env, **TINY, **extra, "eval_every": 3, "eval_episodes": 1})
    renamed = base.replace(policy=renamed_network)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    out = jax.jit(jax.vmap(pjp.make_train(renamed)))(keys)
    reference = jax.jit(jax.vmap(pjp.make_train(base)))(keys)
    assert set(out.params) == {"pi", "vf"}
    for name in reference.metrics:
        np.testing.assert_allclose(out.metrics[name], reference.metrics[name], rtol=1e-5, atol=1e-6, err_msg=name)
    params = jax.tree_util.tree_map(lambda x: x[0], out.params)
    returns = pjp.evaluate(renamed, params, jax.random.PRNGKey(1), 2)
    assert returns.shape == (2,)


def test_a_recurrent_network_is_refused_by_an_algorithm_of_transitions():
    """An algorithm that does not declare ``supports_recurrent`` (the test-only one below) refuses it."""

    @dataclasses.dataclass(frozen=True)
    class Stateful(ActorCritic):
        recurrent = True

    env = pjp.make_env("CartPole-v1")
    with pytest.raises(ValueError, match="carries state and needs sequence minibatches"):
        VanillaPG(VanillaPGConfig(), Stateful(env.observation_shape, env.action_space))
    pjp.make_algorithm(pjp.PPOConfig(), Stateful(env.observation_shape, env.action_space))  # PPO and TRPO keep sequences


# ----------------------------------------------------------------------------- an algorithm in one place
@dataclasses.dataclass(frozen=True)
class VanillaPGConfig(BaseConfig):
    """A test-only algorithm: one Adam step of the policy gradient plus a value regression per rollout."""

    learning_rate: float = field(1e-2, "Adam learning rate", traced=True, bounds=POSITIVE)
    value_steps: int = field(2, "critic steps per rollout", bounds=COUNT)

    algo_name: ClassVar[str] = "test_vpg"


@struct.dataclass
class VanillaPGState:
    params: dict
    opt_state: optax.OptState
    iterations: jax.Array


class VanillaPG(pjp.Algorithm):
    config_class = VanillaPGConfig

    def optimizer(self):
        return optax.adam(self.config.learning_rate)

    def init(self, key):
        params = self.network.init(key)
        return VanillaPGState(params, self.optimizer().init(params), jnp.int32(0))

    def update(self, state, batch, key):
        flat = batch.flatten()

        def loss(params):
            dist = self.network.distribution(policy_on_transitions(self.network, params, flat.obs))
            return -(dist.log_prob(flat.action) * flat.advantage).mean()

        value, grads = jax.value_and_grad(loss)(state.params)
        updates, opt_state = self.optimizer().update(grads, state.opt_state)
        params = optax.apply_updates(state.params, updates)
        return state.replace(params=params, opt_state=opt_state), {"policy_loss": value}


class CountingIteration(VanillaPG):
    """Overrides the whole iteration: counts it, then runs the default one."""

    def iteration(self, env, state):
        state, metrics = super().iteration(env, state)
        algo_state = state.algo_state.replace(iterations=state.algo_state.iterations + 1)
        return state._replace(algo_state=algo_state), {**metrics, "iterations": algo_state.iterations}


@pytest.fixture
def registered(request):
    cls = request.param
    algos_registry.register_algorithm(cls)
    yield cls
    algos_registry._ALGORITHMS.pop(cls.config_class.algo_name)


@pytest.mark.parametrize("registered", [VanillaPG, CountingIteration], indirect=True)
def test_an_algorithm_defined_in_one_place_trains_and_reaches_config_files_and_flags(registered):
    from purejaxrl_ppo.cli.flags import config_fields
    from purejaxrl_ppo.runs.run_files import split_run_dict

    config = pjp.config_from_dict({"algo": "test_vpg", "env_name": "CartPole-v1", **TINY})
    assert isinstance(config, VanillaPGConfig) and config.HYPERPARAMETERS[-1] == "learning_rate"
    out = jax.jit(jax.vmap(pjp.make_train(config)))(jax.random.split(jax.random.PRNGKey(0), 2))
    assert out.metrics["policy_loss"].shape == (2, config.num_updates)
    assert np.isfinite(out.metrics["policy_loss"]).all()
    if registered is CountingIteration:
        np.testing.assert_array_equal(out.metrics["iterations"], [[1, 2, 3]] * 2)
    assert {"learning_rate", "value_steps"} <= set(config_fields())
    parsed, _ = split_run_dict({"algo": "test_vpg", "value_steps": 3})
    assert parsed.value_steps == 3
    sweep = pjp.sweep(config, {"learning_rate": [1e-2, 1e-3]}, num_seeds=1)
    assert sweep.metrics["policy_loss"].shape == (2, 1, config.num_updates)


def test_the_config_reference_is_generated_from_the_metadata():
    from purejaxrl_ppo.cli.reference import config_reference

    committed = (PACKAGE.parent / "docs" / "config.md").read_text()
    assert committed == config_reference(), "docs/config.md is stale: python -m purejaxrl_ppo.cli.reference > docs/config.md"
    for cls in (pjp.PPOConfig, pjp.TRPOConfig, pjp.RunOptions):
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in committed and f.metadata["help"], f.name
