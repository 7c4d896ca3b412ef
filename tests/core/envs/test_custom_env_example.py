"""examples/custom_env.py (the guide docs/guides/custom-env.md includes it) runs: check_env passes on its
corridor, and PPO and TRPO train it through a registered name."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.mark.heavy  # two small trainings: about 25 s of CPU, more on a shared 2-core machine (make test-all)
@pytest.mark.timeout(300)
def test_the_custom_env_example_runs():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_env.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "check_env: ok"
    for algo, line in zip(("PPO", "TRPO"), lines[1:]):
        assert line.startswith(f"{algo}: final return per seed"), lines
        returns = [float(x) for x in line.split("[")[1].split("]")[0].split(",")]
        assert len(returns) == 4 and min(returns) > 0.9, line  # a random walk averages far below 0.9


@pytest.mark.timeout(120)
def test_the_example_env_through_the_cli_by_module_name(capsys):
    from purejaxrl_ppo.cli import main

    sys.path.insert(0, str(ROOT))  # "examples.custom_env:Corridor" imports from the repository root
    try:
        assert main(["check-env", "--env", "examples.custom_env:Corridor", "--num-steps", "40"]) == 0
    finally:
        sys.path.remove(str(ROOT))
    assert capsys.readouterr().out.startswith("ok: examples.custom_env:Corridor follows the env protocol "
                                              "(observation float32[8]; actions discrete 2; max_episode_steps 32")
