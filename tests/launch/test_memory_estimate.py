"""The lower-bound memory estimate (purejaxrl_ppo.launch.memory) and the CLI's refusal before anything is written.

The estimate is checked against hand counts and against XLA's own memory analysis of one compiled update
(it must not exceed it: a lower bound); the refusals are checked with the available memory pinned, so they do
not depend on the machine, and with the training driver replaced by one that fails if called.
"""

import dataclasses

import jax
import pytest

from purejaxrl_ppo import PPOConfig
from purejaxrl_ppo.cli import main
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.core.loop import init_train_state, train_updates
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.launch import memory
from purejaxrl_ppo.launch.programs import abstract_train_state

TINY = PPOConfig(env_name="CartPole-v1", num_envs=8, num_steps=16, total_timesteps=8 * 16 * 2, hidden_sizes=(8,),
                 num_minibatches=1, update_epochs=1)


@dataclasses.dataclass
class FakeDevice:
    platform: str = "cpu"
    device_kind: str = "cpu"
    limit: int | None = None

    def memory_stats(self):
        return None if self.limit is None else {"bytes_limit": self.limit}


def test_train_estimate_is_the_state_and_the_rollout_by_hand():
    state, rollout = memory.seed_state_bytes(TINY)
    assert state == memory.tree_bytes(abstract_train_state(TINY, 1))
    # CartPole: obs and final_obs 4 float32, terminated/done/episode_start bool, log_prob/value/reward float32
    assert rollout == TINY.num_steps * TINY.num_envs * (2 * 4 * 4 + 3 * 1 + 3 * 4)
    estimate = memory.train_estimate(TINY, num_seeds=5, num_devices=2, local_devices=2, num_points=3)
    assert estimate.per_device == 3 * 3 * (state + rollout)  # the busiest device holds ceil(5 / 2) seeds
    assert estimate.host_total == 2 * estimate.per_device
    batched = memory.train_estimate(TINY, num_seeds=8, num_devices=1, local_devices=1, seeds_per_batch=2)
    assert batched.per_device == 8 * state + 2 * rollout


@pytest.mark.timeout(120)
def test_train_estimate_is_below_xla_memory_analysis():
    """One compiled update holds at least the estimate: its argument (the state) plus its temporaries."""
    state = jax.eval_shape(lambda: init_train_state(TINY, jax.random.PRNGKey(0)))
    stats = jax.jit(lambda s: train_updates(TINY, s, 1, 0)).lower(state).compile().memory_analysis()
    estimate = memory.train_estimate(TINY, num_seeds=1, num_devices=1, local_devices=1)
    assert stats.argument_size_in_bytes == memory.seed_state_bytes(TINY)[0]
    assert estimate.per_device <= stats.argument_size_in_bytes + stats.temp_size_in_bytes


def test_rlhf_estimate_takes_the_largest_stage():
    cfg = RLHFConfig(d_model=16, num_layers=1, num_heads=2)
    both = memory.rlhf_estimate(cfg, num_seeds=4, num_devices=1, local_devices=1)
    reused = memory.rlhf_estimate(cfg, num_seeds=4, num_devices=1, local_devices=1, train_sft=False, train_rm=False)
    assert both.per_device >= reused.per_device > 0
    assert [what for what, _ in reused.device_parts] == ["4 seed(s)' RL state", "reference and reward models"]
    wide = memory.rlhf_estimate(RLHFConfig(d_model=32768), num_seeds=4, num_devices=1, local_devices=1)
    assert wide.per_device > 12 * 32768**2 * 4 * 4  # > 4 seeds' copies of one block's 12·d² float32 weights


def test_require_fits_refuses_only_above_the_memory_there_is(monkeypatch):
    estimate = memory.MemoryEstimate((("state", 600),), (("state", 600), ("more", 600)))
    monkeypatch.setattr(memory, "host_memory", lambda: 1000)
    with pytest.raises(ConfigError, match=r"needs at least 1.2 kB.*state 600 B \+ more 600 B.*has 1.0 kB; lower x"):
        memory.require_fits(estimate, "lower x", [FakeDevice(), FakeDevice()])  # a CPU: the host holds all
    memory.require_fits(estimate, "lower x", [FakeDevice(platform="gpu", limit=600)])  # per device: fits
    with pytest.raises(ConfigError, match="one H100 has 599 B"):
        memory.require_fits(estimate, "lower x", [FakeDevice("gpu", "H100", 700), FakeDevice("gpu", "H100", 599)])
    memory.require_fits(estimate, "lower x", [FakeDevice(platform="gpu", limit=None)])  # unknown: not checked
    monkeypatch.setattr(memory, "host_memory", lambda: None)
    memory.require_fits(estimate, "lower x", [FakeDevice()])


@pytest.fixture
def no_memory(monkeypatch):
    """10 MB of memory on any device, and a training driver that fails if it is reached."""
    from purejaxrl_ppo.driver import control as durable

    monkeypatch.setattr(memory, "host_memory", lambda: 10**7)
    monkeypatch.setattr(memory, "device_memory", lambda device: 10**7)

    def reached(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(durable, "train_durable", reached)


@pytest.mark.timeout(60)
def test_train_and_sweep_too_big_are_refused_before_the_run_directory(tmp_path, capsys, no_memory):
    big = ["--env-name", "CartPole-v1", "--num-envs", "200000", "--num-steps", "128", "--num-seeds", "64",
           "--total-timesteps", str(200000 * 128 * 2)]
    for argv in (["train", *big], ["sweep", *big, "--set", "clip_eps=0.1,0.2"]):
        capsys.readouterr()
        assert main([*argv, "--out", str(tmp_path / argv[0])]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: this run needs at least") and err.count("\n") == 1, err
        assert "rollout buffers" in err and "has 10.0 MB" in err and "--num-envs" in err
        assert not (tmp_path / argv[0]).exists()


@pytest.mark.timeout(60)
def test_rlhf_too_big_is_refused_before_the_run_directory(tmp_path, capsys, monkeypatch, no_memory):
    from purejaxrl_ppo.driver import rlhf

    def reached(*args, **kwargs):
        raise AssertionError("rlhf started")

    monkeypatch.setattr(rlhf, "run_rlhf", reached)
    assert main(["rlhf", "--d-model", "4096", "--out", str(tmp_path / "rlhf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: this run needs at least") and err.count("\n") == 1, err
    assert "RL state" in err and "--d-model" in err
    assert not (tmp_path / "rlhf").exists()
