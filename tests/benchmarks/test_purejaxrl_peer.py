"""benchmarks/peers/purejaxrl.py: its patches, its config mapping and the quick CartPole pairing.

The pairing needs PureJaxRL's source (a checkout or a bare git dir): ``$PUREJAXRL_DIR``, else the
mirror at :data:`MIRROR`; it is skipped when neither is there.
"""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import importlib.util
import json
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from helpers import ROOT

_spec = importlib.util.spec_from_file_location("purejaxrl_peer", ROOT / "benchmarks" / "peers" / "purejaxrl.py")
peer = importlib.util.module_from_spec(_spec)
sys.modules["purejaxrl_peer"] = peer
_spec.loader.exec_module(peer)

MIRROR = Path("/work/.mirror/luchris429+purejaxrl/repo")


def _purejaxrl_dir() -> str:
    path = os.environ.get("PUREJAXRL_DIR") or (str(MIRROR) if MIRROR.exists() else None)
    if path is None:
        pytest.skip(f"no PureJaxRL source: set PUREJAXRL_DIR to a checkout (or bare git dir); {MIRROR} is absent")
    try:
        peer.find_source(path)
    except FileNotFoundError as err:
        pytest.skip(f"no usable PureJaxRL source: {err}")
    return path


def test_navix_import_becomes_none_and_nothing_else_changes():
    text = "import chex\nimport navix as nx\n\n\nclass A:\n    pass\n"
    patched, applied = peer.patch_wrappers(text)
    assert applied
    assert "import navix" not in patched and patched.splitlines()[1].startswith("nx = None")
    assert patched.splitlines()[0] == "import chex" and patched.endswith("class A:\n    pass\n")
    assert peer.patch_wrappers("import chex\n") == ("import chex\n", False)


def test_five_value_step_is_terminated_or_truncated_with_gymnax_0_info():
    env, params = peer.compat_make("CartPole-v1")
    _obs, state = env.reset(jax.random.PRNGKey(0), params)
    out = env.step(jax.random.PRNGKey(1), state, jnp.int32(1), params)
    assert len(out) == 5 and out[3].dtype == jnp.bool_
    assert not set(peer.GYMNAX_1_INFO_KEYS) & set(out[4])
    import gymnax

    raw_env, raw_params = gymnax.make("CartPole-v1")  # the global make: still gymnax 1.0's six values
    assert len(raw_env.step(jax.random.PRNGKey(1), state, jnp.int32(1), raw_params)) == 6
    assert env.num_actions == raw_env.num_actions  # everything else is the wrapped env's


@pytest.mark.parametrize("name", list(peer.CONFIGS))
def test_our_config_has_purejaxrl_hyperparameters(name):
    cfg = peer.purejaxrl_config(name, peer.CONFIGS[name]["purejaxrl"]["TOTAL_TIMESTEPS"])
    ours = peer.our_config(name, cfg)
    pairs = {"LR": "learning_rate", "NUM_ENVS": "num_envs", "NUM_STEPS": "num_steps",
             "TOTAL_TIMESTEPS": "total_timesteps", "UPDATE_EPOCHS": "update_epochs",
             "NUM_MINIBATCHES": "num_minibatches", "GAMMA": "gamma", "GAE_LAMBDA": "gae_lambda",
             "CLIP_EPS": "clip_eps", "ENT_COEF": "ent_coef", "VF_COEF": "vf_coef",
             "MAX_GRAD_NORM": "max_grad_norm", "ACTIVATION": "activation", "ANNEAL_LR": "anneal_lr"}
    for theirs, field in pairs.items():
        assert getattr(ours, field) == cfg[theirs], (theirs, field)
    assert ours.env_name.split("?")[0].removeprefix("brax/") == cfg["ENV_NAME"]
    if name == "cartpole":  # PureJaxRL's CartPole config is our default
        assert ours == pjp.PPOConfig()
    if name == "brax":
        assert ours.normalize_observations and ours.scale_rewards and ours.hidden_sizes == (256, 256)
        assert "backend=positional&episode_length=1000&action_repeat=1" in ours.env_name


def test_capped_updates_stay_under_the_budget_but_run_at_least_one():
    assert peer.updates_per_seed("cartpole", 1, None, False) == 976  # 5e5 // 512
    assert peer.updates_per_seed("cartpole", 16, 200_000, False) == 200_000 // (16 * 512)
    assert peer.updates_per_seed("minatar", 64, 200_000, False) == 1
    assert peer.updates_per_seed("brax", 1, None, True) == peer.CONFIGS["brax"]["quick_updates"]


@pytest.mark.heavy  # two cold CartPole compiles: ~35 s on an idle 2-core CPU
@pytest.mark.timeout(600)
def test_quick_cartpole_pairing_measures_both_and_patches_only_purejaxrl(tmp_path):
    import gymnax

    make_before = gymnax.make
    wrappers_before = sys.modules.get("wrappers")
    out = tmp_path / "purejaxrl.json"
    results = peer.run(["--purejaxrl-dir", _purejaxrl_dir(), "--quick", "--configs", "cartpole", "--out", str(out)],
                       log=lambda *a: None)
    saved = json.loads(out.read_text())
    assert saved["same_process"] == json.loads(json.dumps(results["same_process"]))
    (point,) = saved["same_process"]
    assert point["config"] == "cartpole" and point["num_seeds"] == 1
    for program in ("ours", "purejaxrl"):
        assert len(point["env_steps_per_second"][program]) == 2  # one A B B A round
        assert all(v > 0 for v in point["env_steps_per_second"][program])
        assert point["median_env_steps_per_second"][program] > 0
        assert point["compile"][program]["seconds"] > 0
    assert point["median_pair_ratio"] > 0
    # The five-value gymnax is PureJaxRL's module's alone: the global make is untouched.
    assert gymnax.make is make_before and sys.modules.get("wrappers") is wrappers_before
    check = saved["purejaxrl"]["gymnax_patch"]
    assert check["global_gymnax_make_is_gymnax"] and check["purejaxrl_ppo_module_gymnax_is_adapter"]
    assert not check["wrappers_left_in_sys_modules"]
    assert any("navix" in p for p in saved["purejaxrl"]["patches"])
    assert saved["machine"]["versions"]["jax"] == jax.__version__ and saved["purejaxrl"]["commit"]
    assert "| cartpole | 1 |" in saved["table_markdown"]
