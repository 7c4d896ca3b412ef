"""Run directories written by purejaxrl_ppo 0.1 (before the architecture redesign) still resume.

``tests/data/runs_v0_1/`` holds a PPO and a TRPO CartPole run written by 0.1, each stopped
after 2 of 3 chunks (checkpoint at update 4 of 6), and the metrics of the uninterrupted 0.1
runs. They were written with ``PYTHONPATH=<0.1 checkout> python`` running ``train_durable``
(config: 2 envs x 16 steps, hidden (8,), 2 seeds, seed 4, chunks of 2 updates).
"""

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core.config import RetiredFieldWarning

DATA = Path(__file__).parent.parent / "data" / "runs_v0_1"


def _resume(tmp_path: Path, algo: str):
    run_dir = tmp_path / algo
    shutil.copytree(DATA / f"{algo}_cartpole_interrupted", run_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pjp.train_durable(run_dir, resume=True)
    with np.load(DATA / f"{algo}_cartpole_reference_metrics.npz") as data:
        reference = {k: data[k] for k in data.files}
    return result, reference, [w for w in caught if issubclass(w.category, RetiredFieldWarning)]


def test_a_ppo_run_of_0_1_resumes_to_the_same_result(tmp_path):
    result, reference, retired = _resume(tmp_path, "ppo")
    assert result.updates_run == 2 and not retired
    assert set(result.metrics) == set(reference)
    for name in reference:  # PPO's numerics did not change: bit for bit equal to the uninterrupted 0.1 run
        np.testing.assert_array_equal(result.metrics[name], reference[name], err_msg=name)


def test_a_trpo_run_of_0_1_resumes_and_says_vf_coef_is_ignored(tmp_path):
    result, reference, retired = _resume(tmp_path, "trpo")
    assert result.updates_run == 2
    assert retired and "vf_coef" in str(retired[0].message)
    assert set(result.metrics) == set(reference)
    for name in reference:  # the restored history is 0.1's; the 2 updates run here use 0.2's TRPO
        np.testing.assert_array_equal(result.metrics[name][:, :4], reference[name][:, :4], err_msg=name)
    assert np.isfinite(result.metrics["value_loss"]).all()


def test_vf_coef_is_not_a_trpo_field_and_old_dicts_lose_it_with_a_warning():
    with pytest.raises(TypeError, match="vf_coef"):
        pjp.TRPOConfig(vf_coef=0.5)
    with pytest.warns(RetiredFieldWarning, match="Adam is invariant to scaling the loss"):
        config = pjp.config_from_dict({"algo": "trpo", "vf_coef": 1.0, "max_kl": 0.02})
    assert config == pjp.TRPOConfig(max_kl=0.02)
    assert pjp.PPOConfig(vf_coef=1.0).vf_coef == 1.0
