"""Config validation (field metadata and check()), defaults, derived sizes, dict round trips and the pytree protocol."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxrl_ppo import ConfigError, PPOConfig, TRPOConfig, config_from_dict
from purejaxrl_ppo.core.algos import config_classes
from purejaxrl_ppo.core.config import BaseConfig, field_table

# Small but valid base settings (batch 4 * 8 = 32).
SMALL = dict(env_name="CartPole-v1", num_envs=4, num_steps=8, total_timesteps=320)


def raises(match_all, cls=PPOConfig, **kwargs):
    """Build ``cls(**kwargs)``; assert ConfigError whose message contains every string in ``match_all``."""
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    message = str(info.value)
    for part in match_all:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# ----------------------------------------------------------------------------- validation
def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)


def test_minibatches_must_divide_batch():
    # 3 envs * 5 steps = 15 transitions, 4 minibatches
    message = raises(["num_minibatches", "15", "4"], num_envs=3, num_steps=5, total_timesteps=150, num_minibatches=4)
    assert "3" in message and "5" in message
    PPOConfig(num_envs=3, num_steps=5, total_timesteps=150, num_minibatches=5)  # a divisor is fine


@pytest.mark.parametrize(
    "cls,field,value",
    [
        (PPOConfig, "num_envs", 0),
        (PPOConfig, "num_steps", -3),
        (PPOConfig, "total_timesteps", 0),
        (PPOConfig, "update_epochs", 0),
        (PPOConfig, "num_minibatches", 0),
        (TRPOConfig, "cg_iters", 0),
        (TRPOConfig, "fisher_subsample", 0),
        (TRPOConfig, "line_search_steps", -1),
        (TRPOConfig, "critic_epochs", 0),
        (TRPOConfig, "critic_minibatches", 0),
    ],
)
def test_non_positive_sizes(cls, field, value):
    raises([field, str(value)], cls=cls, **{**SMALL, field: value})


@pytest.mark.parametrize("value", [0.0, -0.1, 1.0, 1.5])
def test_clip_eps_must_be_in_open_unit_interval(value):
    raises(["clip_eps", str(value)], **SMALL, clip_eps=value)


@pytest.mark.parametrize("value", [0.05, 0.5, 0.99])
def test_clip_eps_valid_values(value):
    assert PPOConfig(**SMALL, clip_eps=value).clip_eps == value


@pytest.mark.parametrize("value", [0.0, -0.01])
def test_max_kl_must_be_positive(value):
    raises(["max_kl", str(value)], cls=TRPOConfig, **SMALL, max_kl=value)


@pytest.mark.parametrize("value", [0.0, -0.5, 1.01])
def test_gamma_outside_half_open_interval(value):
    raises(["gamma", str(value)], **SMALL, gamma=value)


def test_gamma_one_is_allowed():
    assert PPOConfig(**SMALL, gamma=1.0).gamma == 1.0


@pytest.mark.parametrize("cls", [PPOConfig, TRPOConfig])
def test_bad_activation(cls):
    message = raises(["activation", "sigmoid"], cls=cls, **SMALL, activation="sigmoid")
    assert "tanh" in message  # says what would be valid


def test_empty_and_bad_hidden_sizes():
    raises(["hidden_sizes", "must be a non-empty list of positive integers"], **SMALL, hidden_sizes=())
    raises(["hidden_sizes", "0"], **SMALL, hidden_sizes=(64, 0))


def test_scalar_hidden_sizes_is_a_config_error():
    raises(["hidden_sizes", "64"], **SMALL, hidden_sizes=64)


def test_hidden_sizes_list_becomes_tuple():
    assert PPOConfig(**SMALL, hidden_sizes=[8, 8]).hidden_sizes == (8, 8)


@pytest.mark.parametrize(
    "field,value",
    [("num_envs", 4.0), ("num_steps", 8.5), ("total_timesteps", True), ("update_epochs", "4")],
)
def test_wrong_type_for_int(field, value):
    raises([field, repr(value)], **{**SMALL, field: value})


@pytest.mark.parametrize("field,value", [("anneal_lr", 1), ("clip_value_loss", 0), ("normalize_advantages", "yes")])
def test_wrong_type_for_bool(field, value):
    raises([field, repr(value), "must be true or false"], **{**SMALL, field: value})


def test_wrong_type_for_float_and_non_finite():
    raises(["learning_rate"], **SMALL, learning_rate="3e-4")
    raises(["gamma", "nan"], **SMALL, gamma=float("nan"))
    raises(["clip_eps"], **SMALL, clip_eps=True)


def test_unknown_env_lists_known_envs():
    message = raises(["CartPole-v9", "CartPole-v1", "Pendulum-v1"], env_name="CartPole-v9")
    assert "env_name" in message


def test_total_timesteps_smaller_than_one_rollout():
    # one rollout = 4 * 8 = 32 transitions
    raises(["total_timesteps", "31", "32"], **{**SMALL, "total_timesteps": 31})
    assert PPOConfig(**{**SMALL, "total_timesteps": 32}).num_updates == 1


def test_fisher_subsample_larger_than_batch():
    raises(["fisher_subsample", "33", "32"], cls=TRPOConfig, **SMALL, fisher_subsample=33)
    assert TRPOConfig(**SMALL, fisher_subsample=32).fisher_subsample == 32


def test_critic_minibatches_must_divide_batch():
    raises(["critic_minibatches", "3", "32"], cls=TRPOConfig, **SMALL, critic_minibatches=3)


def test_policy_is_a_registered_network():
    assert PPOConfig(**SMALL).policy == "mlp" and TRPOConfig(**SMALL).policy == "mlp"
    message = raises(["policy", "transformer"], **SMALL, policy="transformer")
    assert "mlp" in message  # says what would be valid


def test_check_runs_cross_field_rules_after_the_per_field_checks():
    cfg = PPOConfig(**SMALL)
    cfg.check()  # a valid config passes again
    # per-field checks (type, bounds) run first, from the field metadata ...
    raises(["num_minibatches", "positive integer"], **SMALL, num_minibatches=0)
    # ... then check() relates fields to one another
    raises(["num_minibatches", "not divisible"], **SMALL, num_minibatches=3)
    assert not hasattr(BaseConfig, "validate")


def test_replace_validates():
    cfg = PPOConfig(**SMALL)
    assert cfg.replace(clip_eps=0.3).clip_eps == 0.3
    with pytest.raises(ConfigError, match="clip_eps"):
        cfg.replace(clip_eps=1.5)


# ----------------------------------------------------------------------------- defaults and derived sizes
def test_ppo_defaults_are_purejaxrl_cartpole():
    cfg = PPOConfig()
    assert cfg.env_name == "CartPole-v1"
    assert cfg.num_envs == 4
    assert cfg.num_steps == 128
    assert cfg.update_epochs == 4
    assert cfg.num_minibatches == 4
    assert cfg.learning_rate == 2.5e-4
    assert cfg.anneal_lr is True
    assert cfg.gamma == 0.99
    assert cfg.gae_lambda == 0.95
    assert cfg.clip_eps == 0.2
    assert cfg.ent_coef == 0.01
    assert cfg.vf_coef == 0.5
    assert cfg.max_grad_norm == 0.5
    assert cfg.total_timesteps == 500_000  # PureJaxRL's CartPole TOTAL_TIMESTEPS = 5e5
    assert cfg.activation == "tanh"
    assert cfg.hidden_sizes == (64, 64)


def test_derived_sizes():
    cfg = PPOConfig()
    assert cfg.batch_size == 512
    assert cfg.num_updates == 500_000 // 512 == 976
    assert cfg.minibatch_size == 128
    cfg = PPOConfig(num_envs=3, num_steps=10, total_timesteps=95, num_minibatches=5)
    assert (cfg.batch_size, cfg.num_updates, cfg.minibatch_size) == (30, 3, 6)
    trpo = TRPOConfig(num_envs=2, num_steps=16, total_timesteps=100, critic_minibatches=8)
    assert (trpo.batch_size, trpo.num_updates, trpo.critic_minibatch_size) == (32, 3, 4)


# ----------------------------------------------------------------------------- dict round trip
@pytest.mark.parametrize(
    "cfg",
    [
        PPOConfig(**SMALL, clip_eps=0.3, hidden_sizes=(8, 4), anneal_lr=False),
        TRPOConfig(**SMALL, max_kl=0.02, cg_iters=7, hidden_sizes=(16,)),
    ],
)
def test_to_dict_round_trip(cfg):
    d = cfg.to_dict()
    assert d["algo"] == {PPOConfig: "ppo", TRPOConfig: "trpo"}[type(cfg)]
    back = config_from_dict(json.loads(json.dumps(d)))  # also JSON-serialisable
    assert type(back) is type(cfg)
    assert back == cfg
    assert back.hidden_sizes == cfg.hidden_sizes and isinstance(back.hidden_sizes, tuple)


def test_config_from_dict_unknown_key_and_algo():
    d = PPOConfig(**SMALL).to_dict()
    d["max_kl"] = 0.01  # a TRPO field is unknown to PPO
    with pytest.raises(ConfigError, match="max_kl"):
        config_from_dict(d)
    with pytest.raises(ConfigError, match="bogus"):
        config_from_dict({"algo": "ppo", "bogus": 1})
    with pytest.raises(ConfigError, match="algo"):
        config_from_dict({"algo": "a2c"})
    with pytest.raises(ConfigError, match="algo"):
        config_from_dict({"num_envs": 4})
    # values are validated too
    with pytest.raises(ConfigError, match="clip_eps"):
        config_from_dict({"algo": "ppo", "clip_eps": 2.0})


# ----------------------------------------------------------------------------- pytree protocol
PPO_HYPERPARAMETERS = {"gamma", "gae_lambda", "ent_coef", "vf_coef", "learning_rate", "clip_eps", "max_grad_norm",
                       "kl_coef", "kl_target"}
TRPO_HYPERPARAMETERS = {"gamma", "gae_lambda", "ent_coef", "max_kl", "cg_damping", "backtrack_coef", "critic_learning_rate"}


def test_config_classes_are_the_registered_algorithms():
    assert config_classes() == {"ppo": PPOConfig, "trpo": TRPOConfig}
    for name, cls in config_classes().items():
        assert cls.algo_name == name and issubclass(cls, BaseConfig)


@pytest.mark.parametrize("cls", [PPOConfig, TRPOConfig])
def test_hyperparameters_are_the_traced_fields_of_the_table(cls):
    rows = field_table(cls)
    assert [row["name"] for row in rows] == [f.name for f in dataclasses.fields(cls)]
    assert cls.HYPERPARAMETERS == tuple(row["name"] for row in rows if row["traced"])
    assert all(row["type"] == "float" for row in rows if row["traced"])
    assert all(row["help"] for row in rows)  # every field documents itself
    by_name = {row["name"]: row for row in rows}
    assert by_name["activation"]["choices"] == ("tanh", "relu", "gelu", "elu", "swish")
    assert "mlp" in by_name["policy"]["choices"] and by_name["num_envs"]["default"] == 4


def test_pytree_leaves_are_exactly_the_hyperparameters():
    cfg = PPOConfig(**SMALL, gamma=0.91, gae_lambda=0.92, ent_coef=0.03, vf_coef=0.4, learning_rate=1e-3,
                    clip_eps=0.15, max_grad_norm=0.7)
    assert set(PPOConfig.HYPERPARAMETERS) == PPO_HYPERPARAMETERS
    leaves = jax.tree_util.tree_leaves(cfg)
    assert leaves == [getattr(cfg, name) for name in PPOConfig.HYPERPARAMETERS]
    assert sorted(leaves) == sorted([0.91, 0.92, 0.03, 0.4, 1e-3, 0.15, 0.7, 1.0, 0.01])  # + kl_coef, kl_target defaults

    trpo = TRPOConfig(**SMALL, gamma=0.91, gae_lambda=0.92, ent_coef=0.03, max_kl=0.02,
                      cg_damping=0.05, backtrack_coef=0.6, critic_learning_rate=3e-3)
    assert set(TRPOConfig.HYPERPARAMETERS) == TRPO_HYPERPARAMETERS
    assert sorted(jax.tree_util.tree_leaves(trpo)) == sorted([0.91, 0.92, 0.03, 0.02, 0.05, 0.6, 3e-3])


def test_structural_fields_are_static():
    a = PPOConfig(**SMALL)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(a.replace(clip_eps=0.3, gamma=0.9))
    assert jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(a.replace(num_envs=8))
    assert jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(a.replace(anneal_lr=False))
    # a tree_map round trip rebuilds an equal config
    assert jax.tree_util.tree_map(lambda x: x, a) == a


def test_vmap_over_stacked_configs_with_tracers():
    cfg1 = PPOConfig(**SMALL, clip_eps=0.1, gamma=0.9)
    cfg2 = PPOConfig(**SMALL, clip_eps=0.3, gamma=0.99)
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), cfg1, cfg2)
    assert isinstance(stacked, PPOConfig)
    assert stacked.num_envs == 4 and stacked.env_name == "CartPole-v1"
    np.testing.assert_allclose(np.asarray(stacked.clip_eps), [0.1, 0.3], rtol=1e-6)
    out = jax.vmap(lambda c: c.clip_eps * 2)(stacked)
    np.testing.assert_allclose(np.asarray(out), [0.2, 0.6], rtol=1e-6)
    out = jax.jit(jax.vmap(lambda c: c.gamma * c.batch_size))(stacked)
    np.testing.assert_allclose(np.asarray(out), [0.9 * 32, 0.99 * 32], rtol=1e-6)

    trpo1, trpo2 = TRPOConfig(**SMALL, max_kl=0.01), TRPOConfig(**SMALL, max_kl=0.05)
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), trpo1, trpo2)
    np.testing.assert_allclose(np.asarray(jax.vmap(lambda c: c.max_kl + 0.0)(stacked)), [0.01, 0.05], rtol=1e-6)


def test_jit_with_traced_config():
    cfg = PPOConfig(**SMALL, learning_rate=1e-3)
    out = jax.jit(lambda c: c.learning_rate * c.num_envs)(cfg)
    assert float(out) == pytest.approx(4e-3, rel=1e-6)
