"""Config rules added by the review: values that used to be accepted and then failed silently."""

import pytest

import purejaxrl_ppo as pjp


@pytest.mark.parametrize("damping", [0.0, -0.1])
def test_cg_damping_must_be_positive(damping):
    # F alone can be singular (fewer Fisher samples than parameters): CG then divides by ~0, the step is NaN
    # and every line-search trial is rejected without a word.
    with pytest.raises(pjp.ConfigError, match=r"cg_damping must be in \(0.0, inf\)"):
        pjp.TRPOConfig(cg_damping=damping)
    assert pjp.TRPOConfig(cg_damping=1e-6).cg_damping == 1e-6


def test_ppo_minibatch_of_one_with_advantage_normalisation_is_refused():
    with pytest.raises(pjp.ConfigError, match="1 transition per minibatch"):
        pjp.PPOConfig(num_envs=2, num_steps=2, total_timesteps=4, num_minibatches=4)
    config = pjp.PPOConfig(num_envs=2, num_steps=2, total_timesteps=4, num_minibatches=4, normalize_advantages=False)
    assert config.minibatch_size == 1
    assert pjp.PPOConfig(num_envs=2, num_steps=2, total_timesteps=4, num_minibatches=2).minibatch_size == 2


def test_trpo_batch_of_one_with_advantage_normalisation_is_refused():
    with pytest.raises(pjp.ConfigError, match="1 transition per update"):
        pjp.TRPOConfig(num_envs=1, num_steps=1, total_timesteps=4, critic_minibatches=1, fisher_subsample=1)
    pjp.TRPOConfig(num_envs=1, num_steps=1, total_timesteps=4, critic_minibatches=1, fisher_subsample=1,
                   normalize_advantages=False)
