"""The over-optimisation benchmark's findings are read off the curves as stated (hand-made curves)."""

import numpy as np
from helpers import load_script

oo_bench = load_script("benchmarks/rlhf_overoptimisation.py", "rlhf_overoptimisation")


def test_first_d_reaching_interpolates_the_first_crossing():
    d = np.array([0.0, 1.0, 2.0, 3.0])
    gain = np.array([0.0, 0.1, 0.3, 0.2])
    assert oo_bench.first_d_reaching(d, gain, 0.2) == 1.5  # between 0.1 at d=1 and 0.3 at d=2
    assert oo_bench.first_d_reaching(d, gain, 0.0) == 0.0
    assert oo_bench.first_d_reaching(d, gain, 0.5) is None


def test_drop_interval_covers_the_mean_and_excludes_zero_for_a_clear_drop():
    drops = np.array([0.10, 0.12, 0.08, 0.11, 0.09, 0.10, 0.13, 0.07])
    low, high = oo_bench.bootstrap_mean_ci(drops)
    assert 0 < low < drops.mean() < high


def test_rl_settings_report_the_smoothed_drop_and_the_final_point():
    iterations = 20
    peak_then_fall = np.concatenate([np.linspace(0, 0.5, 10), np.linspace(0.5, 0.1, 10)])
    metrics = {"gold_score": np.tile(peak_then_fall, (1, 3, 1)),
               "proxy_score": np.tile(np.linspace(0, 2, iterations), (1, 3, 1)),
               "kl_to_reference": np.tile(np.linspace(0, 16, iterations), (1, 3, 1))}
    (setting,) = oo_bench.rl_settings("ppo", [0.0], metrics, 0.0, 1.0)
    smooth = np.convolve(peak_then_fall, np.ones(5) / 5, mode="valid")
    np.testing.assert_allclose(setting["peak"]["per_seed_drop"], [smooth.max() - smooth[-1]] * 3)
    np.testing.assert_allclose(setting["final"]["d"], np.sqrt(np.median(np.linspace(0, 16, iterations)[-5:])))
    assert setting["fit"]["beta"] > 0 and 0 < setting["fit"]["d_peak"] < 4


def test_leave_one_out_peak_does_not_turn_noise_into_a_drop():
    rng = np.random.default_rng(0)
    flat = rng.normal(scale=0.1, size=(16, 40))  # no peak: only noise
    naive = np.mean([np.convolve(g, np.ones(5) / 5, "valid").max() - np.convolve(g, np.ones(5) / 5, "valid")[-1]
                     for g in flat])
    peak = oo_bench.peak_drop(flat)
    assert naive > 0.05  # the per-seed max-minus-last of noise is clearly positive ...
    assert peak["drop_ci95"][0] < 0 < peak["drop_ci95"][1] and not oo_bench.falls(peak)  # ... the rule's is not
    rising_then_falling = flat + np.concatenate([np.linspace(0, 1, 20), np.linspace(1, 0.5, 20)])
    assert oo_bench.falls(oo_bench.peak_drop(rising_then_falling))


def test_the_beta0_gain_is_read_where_its_d_first_reaches_the_target():
    d = np.array([0.0, 1.0, 2.0, 1.5, 3.0])  # noisy: d falls back once
    gain = np.array([0.0, 0.2, 0.4, 0.1, 0.5])
    assert np.isclose(oo_bench.gain_where_d_first_reaches(d, gain, 1.5), 0.3)  # between d=1 and d=2, not d=1.5 later
    assert oo_bench.gain_where_d_first_reaches(d, gain, 0.0) == 0.0
    assert oo_bench.gain_where_d_first_reaches(d, gain, 9.0) == 0.5
