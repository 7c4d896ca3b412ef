"""The random policy of the benchmarks' floors (``benchmarks/random_policy_scores.py``) samples only allowed actions,
uniformly, per factor for a multi-discrete space."""

import jax
import numpy as np
import pytest
from helpers import load_script
from toy_envs import MaskedChoice

import purejaxrl_ppo as pjp

rps = load_script("benchmarks/random_policy_scores.py", "random_policy_scores")
pjp.register_env("toy/masked-choice-random", MaskedChoice)
pjp.register_env("toy/masked-choice-random-2", lambda: MaskedChoice(factors=2))


@pytest.mark.parametrize("factors", [1, 2])
def test_random_actions_are_allowed_and_uniform(factors):
    env = MaskedChoice(factors=factors)
    sample = rps.random_action_sampler(env.action_space)
    obs, _ = env.reset(jax.random.PRNGKey(0))
    mask = np.asarray(obs["action_mask"]).reshape(factors, env.n)
    assert (~mask).any(), "the test needs a state that forbids some action"
    actions = np.asarray(jax.vmap(sample, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(1), 4000), obs))
    actions = actions.reshape(4000, factors)
    for k in range(factors):
        allowed = np.flatnonzero(mask[k])
        counts = np.bincount(actions[:, k], minlength=env.n)
        assert counts[~mask[k]].sum() == 0
        np.testing.assert_allclose(counts[allowed] / 4000, 1 / allowed.size, atol=0.03)


def test_random_returns_never_take_a_forbidden_action():
    """A forbidden action costs -10 in MaskedChoice: every episode's return is in [0, length]."""
    for name in ("toy/masked-choice-random", "toy/masked-choice-random-2"):
        returns = rps.random_returns(name, episodes=64)
        assert returns.shape == (64,) and (returns >= 0).all() and (returns <= 2 * MaskedChoice.length).all()
