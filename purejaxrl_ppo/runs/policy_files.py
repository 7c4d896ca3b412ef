"""A trained policy on disk: a run's ``policy.msgpack``, and one self-contained exported file.

* ``policy.msgpack`` (in every finished run directory, :func:`save_policy`): every seed's
  parameters and observation statistics; the run's ``config.json`` rebuilds the network.
* an exported policy (:func:`export_policy`, ``python -m purejaxrl_ppo export``): one msgpack
  file holding the parameters (every seed or one), the observation statistics, the config
  as JSON and a format version: all that is needed to act, with no run directory.

:func:`load_run` reads either into a :class:`~purejaxrl_ppo.core.acting.Policy`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from purejaxrl_ppo.core.acting import Policy, PolicyParams
from purejaxrl_ppo.core.algos import config_from_dict
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.core.networks import Params
from purejaxrl_ppo.core.normalization import RunningMeanStd
from purejaxrl_ppo.runs.rundir import require_finished, write_atomic

POLICY_FILE = "policy.msgpack"
#: ``format`` of an exported policy file, and the newest ``format_version`` this package reads and writes.
EXPORT_FORMAT = "purejaxrl_ppo.policy"
EXPORT_VERSION = 1


def stats_to_tree(obs_stats: Any) -> dict[str, Any]:
    """Observation statistics as plain arrays: ``{"count", "mean", "var"}``, or one such dict per entry of a
    dict observation (:func:`~purejaxrl_ppo.core.normalization.init_observation_stats`)."""
    if isinstance(obs_stats, RunningMeanStd):
        return {"count": obs_stats.count, "mean": obs_stats.mean, "var": obs_stats.var}
    return {key: stats_to_tree(value) for key, value in obs_stats.items()}


def stats_from_tree(tree: dict[str, Any]) -> Any:
    """Inverse of :func:`stats_to_tree`."""
    if "count" in tree and not isinstance(tree["count"], dict):
        return RunningMeanStd(tree["count"], tree["mean"], tree["var"])
    return {key: stats_from_tree(value) for key, value in tree.items()}


def save_policy(path: Path, params: Params, obs_stats: Any | None) -> None:
    """Write ``params`` (any leading seed axis kept) and the observation statistics as msgpack (atomically)."""
    write_atomic(Path(path), serialization.msgpack_serialize(_policy_tree(params, obs_stats)))


def _policy_tree(params: Params, obs_stats: Any | None) -> dict[str, Any]:
    tree = {"params": jax.device_get(params)}
    if obs_stats is not None:
        tree["obs_stats"] = stats_to_tree(obs_stats)
    return jax.tree_util.tree_map(np.asarray, tree)


def load_policy(path: Path) -> tuple[Params, Any | None]:
    """Inverse of :func:`save_policy`: ``(params, obs_stats or None)`` (also reads an exported file's)."""
    tree = serialization.msgpack_restore(Path(path).read_bytes())
    stats = tree.get("obs_stats")
    return tree["params"], None if stats is None else stats_from_tree(stats)


def select_seed(tree: Any, index: int) -> Any:
    """Slice seed ``index`` out of a pytree with a leading seed axis."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)


# ----------------------------------------------------------------------------- a policy to act with
def load_run(path: Path | str) -> Policy:
    """The :class:`~purejaxrl_ppo.core.acting.Policy` of a finished run directory or an exported file.

    A run directory must be finished and intact
    (:func:`~purejaxrl_ppo.runs.rundir.require_finished`); its ``config.json`` rebuilds the
    network and ``policy.msgpack`` gives every seed's parameters. A file must be one written by
    :func:`export_policy`. Any problem is a one-line :class:`ConfigError` saying what is wrong.
    """
    path = Path(path)
    if path.is_dir():
        return _load_run_dir(path)
    if path.is_file():
        return _load_exported(path)
    raise ConfigError(f"{path} does not exist (give a run directory written by `train` or a file written by `export`)")


def _load_run_dir(run_dir: Path) -> Policy:
    require_finished(run_dir)
    config_path, policy_path = run_dir / "config.json", run_dir / POLICY_FILE
    for path in (config_path, policy_path):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; is {run_dir} a run directory written by `train`?")
    values = json.loads(config_path.read_text())
    values.pop("algo_kwargs", None)  # written by 0.1, folded into the config since
    params, obs_stats = _read(policy_path, load_policy)
    return _policy(config_from_dict(values), params, obs_stats, None, policy_path)


def _load_exported(path: Path) -> Policy:
    tree = _read(path, lambda p: serialization.msgpack_restore(p.read_bytes()))
    if not isinstance(tree, dict) or tree.get("format") != EXPORT_FORMAT:
        if isinstance(tree, dict) and "params" in tree:
            raise ConfigError(f"{path} holds parameters only (a run's {POLICY_FILE}): load its run directory, or write "
                              "a self-contained file with: python -m purejaxrl_ppo export --run RUN_DIR --out FILE")
        raise ConfigError(f"{path} is not a policy file written by `python -m purejaxrl_ppo export`")
    version = int(tree.get("format_version", -1))
    if not 1 <= version <= EXPORT_VERSION:
        raise ConfigError(f"{path} has policy format version {version}; this purejaxrl_ppo reads versions 1 to "
                          f"{EXPORT_VERSION} (written by a newer version? upgrade purejaxrl_ppo)")
    stats = tree.get("obs_stats")
    obs_stats = None if stats is None else stats_from_tree(stats)
    config = config_from_dict(json.loads(tree["config"]))
    return _policy(config, tree["params"], obs_stats, tuple(int(i) for i in np.asarray(tree["seed_indices"])), path)


def _read(path: Path, reader):
    try:
        return reader(path)
    except Exception as err:  # noqa: BLE001 - msgpack raises many kinds for a damaged file
        raise ConfigError(f"{path} cannot be read as a policy file ({type(err).__name__}: {err})") from None


def _policy(config, params: Params, obs_stats: Any | None, seed_indices: tuple[int, ...] | None,
            source: Path) -> Policy:
    """A :class:`Policy`, after checking that ``params [S, ...]`` fit the network ``config`` describes."""
    num_seeds = int(jax.tree_util.tree_leaves(params)[0].shape[0])
    policy = Policy(config, PolicyParams(params, obs_stats),
                    tuple(range(num_seeds)) if seed_indices is None else seed_indices)
    want = jax.eval_shape(policy.network.init, jax.random.PRNGKey(0))
    fits = jax.tree_util.tree_structure(want) == jax.tree_util.tree_structure(params) and all(
        tuple(g.shape) == (num_seeds, *w.shape)
        for g, w in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(want)))
    if not fits:
        raise ConfigError(f"the parameters in {source} do not fit the {config.policy!r} network its config describes "
                          f"(env {config.env_name}, hidden_sizes {list(config.hidden_sizes)})")
    return policy


def export_policy(policy: Policy, path: Path | str, seed_index: int | None = None) -> Path:
    """Write ``policy`` (every seed, or only row ``seed_index``) as one self-contained msgpack file; returns the path.

    The file holds ``format``, ``format_version`` (:data:`EXPORT_VERSION`), ``config`` (the
    config as JSON), ``seed_indices [S]`` (each row's seed in the original run), ``params``
    (leading ``[S]``) and, when normalised, ``obs_stats``; :func:`load_run` reads it back, and
    :func:`load_policy` reads its ``(params, obs_stats)``. Written atomically.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give the exported file's name (e.g. {path / 'policy.msgpack'})")
    params, seeds = policy.params, list(policy.seed_indices)
    if seed_index is not None:
        one = policy.params_of(seed_index)
        params, seeds = jax.tree_util.tree_map(lambda x: np.asarray(x)[None], one), [seeds[seed_index]]
    tree = _policy_tree(params.network, params.obs_stats)
    tree.update(format=EXPORT_FORMAT, format_version=EXPORT_VERSION, config=json.dumps(policy.config.to_dict()),
                seed_indices=np.asarray(seeds, np.int64))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, serialization.msgpack_serialize(tree))
    return path
