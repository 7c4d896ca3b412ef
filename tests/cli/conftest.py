"""Fixtures of the CLI tests: one finished run, trained once per session by the real ``train`` command."""

import pytest

#: A tiny MinAtar run (gymnax draws MinAtar with matplotlib alone, so ``render`` works on it): 2 updates.
TINY_MINATAR = ["--env", "Breakout-MinAtar", "--num-seeds", "2", "--total-timesteps", "32", "--num-envs", "2",
                "--num-steps", "8", "--num-minibatches", "1", "--hidden-sizes", "8"]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A run directory written by ``python -m purejaxrl_ppo train`` (in-process); copy it before changing it."""
    from purejaxrl_ppo.cli import main

    run = tmp_path_factory.mktemp("finished") / "breakout"
    assert main(["train", *TINY_MINATAR, "--quiet", "--out", str(run)]) == 0
    return run
