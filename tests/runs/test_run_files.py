"""Run files (runs/run_files.py, YAML/TOML): round trips, the shipped examples, and every kind of bad input."""

import pytest

import purejaxrl_ppo as pjp
from helpers import ROOT
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.run_files import load_run_file, read_run_file, split_run_dict, write_run_file

EXAMPLES = sorted((ROOT / "examples").glob("*.*ml"))


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
@pytest.mark.parametrize("config", [
    pjp.PPOConfig(num_envs=8, hidden_sizes=(32, 16), learning_rate=1e-3, anneal_lr=False),
    pjp.TRPOConfig(env_name="Pendulum-v1", max_kl=0.02, critic_minibatches=8),
], ids=["ppo", "trpo"])
def test_write_then_load_gives_the_same_config_and_options(tmp_path, suffix, config):
    options = RunOptions(num_seeds=3, seed=7, chunk_updates=5, tensorboard=True, wandb_project="p")
    path = write_run_file(tmp_path / f"run{suffix}", config, options, header="a comment")
    assert path.read_text().startswith("# a comment\n")
    assert load_run_file(path) == (config, options)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_shipped_examples_are_valid(path):
    config, options = load_run_file(path)
    assert config.algo_name in path.name and options.num_seeds == 8


def test_yaml_reads_exponent_floats_without_a_dot(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("algo: ppo\nlearning_rate: 1e-3\nmax_grad_norm: 5E+1\nclip_eps: .1\n")
    config, _ = load_run_file(path)
    assert (config.learning_rate, config.max_grad_norm, config.clip_eps) == (1e-3, 50.0, 0.1)


def write(tmp_path, text, suffix=".yaml"):
    path = tmp_path / f"run{suffix}"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,expected", [
    ("algo: ppo\nnum_env: 4\n", ["unknown key(s) ['num_env']", "num_envs"]),
    ("algo: ppo\nmax_kl: 0.01\n", ["max_kl", "another algo"]),
    ("algo: sac\n", ["algo must be one of ['ppo', 'trpo']", "'sac'"]),
    ("algo: ppo\nnum_envs: 4.5\n", ["num_envs must be an integer, got 4.5"]),
    ("algo: ppo\nnum_envs: '4'\n", ["num_envs must be an integer, got '4'"]),
    ("algo: ppo\nlearning_rate: fast\n", ["learning_rate must be a number, got 'fast'"]),
    ("algo: ppo\nlearning_rate: null\n", ["learning_rate must be a number, got None"]),
    ("algo: ppo\nanneal_lr: 1\n", ["anneal_lr must be true or false, got 1"]),
    ("algo: ppo\nhidden_sizes: 64\n", ["hidden_sizes must be a non-empty list of positive integers, got 64"]),
    ("algo: ppo\nhidden_sizes: [64, x]\n", ["hidden_sizes", "positive integers"]),
    ("algo: ppo\nenv_name: 3\n", ["env_name must be a string, got 3"]),
    ("algo: ppo\nnum_seeds: 0\n", ["num_seeds must be a positive integer, got 0"]),
    ("algo: ppo\ntensorboard: yes please\n", ["tensorboard must be true or false"]),
    ("algo: ppo\nclip_eps: 2.0\n", ["clip_eps must be in (0.0, 1.0), got 2.0"]),
    ("- a\n- b\n", ["expected a mapping"]),
    ("algo: [unclosed\n", ["cannot parse"]),
])
def test_bad_yaml_names_the_file_and_the_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_run_file(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, message


def test_bad_toml_and_wrong_suffix_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="num_envs must be an integer"):
        load_run_file(write(tmp_path, 'algo = "ppo"\nnum_envs = "4"\n', ".toml"))
    with pytest.raises(ConfigError, match="cannot parse"):
        load_run_file(write(tmp_path, "algo = \n", ".toml"))
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml, \.toml"):
        read_run_file(write(tmp_path, "{}", ".json"))
    with pytest.raises(ConfigError, match="does not exist"):
        read_run_file(tmp_path / "missing.yaml")


def test_split_run_dict_defaults_to_ppo_and_separates_options():
    config, options = split_run_dict({"num_envs": 8, "num_seeds": 2})
    assert isinstance(config, pjp.PPOConfig) and config.num_envs == 8 and options.num_seeds == 2


def test_config_rejects_none_for_a_float_field():
    # tightened in config.py: None used to pass construction and fail inside the compiled program
    with pytest.raises(ConfigError, match="learning_rate must be a number, got None"):
        pjp.PPOConfig(learning_rate=None)
