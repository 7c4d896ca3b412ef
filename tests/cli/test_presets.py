"""The Brax presets (cli/presets.py)."""

import purejaxrl_ppo as pjp
from purejaxrl_ppo.cli.presets import brax_preset


def test_brax_presets_apply_only_to_brax_names():
    assert brax_preset("ppo", "CartPole-v1") == {}
    preset = brax_preset("ppo", "brax/inverted_pendulum?backend=positional")
    assert preset["normalize_observations"] and preset["num_envs"] == 32
    assert brax_preset("trpo", "brax/hopper")["action_squash"] == "tanh"
    for algo, cls in (("ppo", pjp.PPOConfig), ("trpo", pjp.TRPOConfig)):
        for env in ("brax/inverted_pendulum", "brax/reacher", "brax/hopper"):
            cls(env_name=env, **brax_preset(algo, env))  # every preset is a valid config
