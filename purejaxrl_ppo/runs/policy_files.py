"""A trained policy on disk: every seed's parameters and observation statistics as msgpack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from purejaxrl_ppo.core.networks import Params
from purejaxrl_ppo.core.normalization import RunningMeanStd
from purejaxrl_ppo.runs.rundir import write_atomic

POLICY_FILE = "policy.msgpack"


def save_policy(path: Path, params: Params, obs_stats: RunningMeanStd | None) -> None:
    """Write ``params`` (any leading seed axis kept) and the observation statistics as msgpack (atomically)."""
    tree = {"params": jax.device_get(params)}
    if obs_stats is not None:
        tree["obs_stats"] = {"count": obs_stats.count, "mean": obs_stats.mean, "var": obs_stats.var}
    write_atomic(Path(path), serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, tree)))


def load_policy(path: Path) -> tuple[Params, RunningMeanStd | None]:
    """Inverse of :func:`save_policy`: ``(params, obs_stats or None)``."""
    tree = serialization.msgpack_restore(Path(path).read_bytes())
    stats = tree.get("obs_stats")
    return tree["params"], None if stats is None else RunningMeanStd(stats["count"], stats["mean"], stats["var"])


def select_seed(tree: Any, index: int) -> Any:
    """Slice seed ``index`` out of a pytree with a leading seed axis."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)
