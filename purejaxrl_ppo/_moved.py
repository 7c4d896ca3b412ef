"""Modules that moved in the architecture redesign: importing an old path says where it went.

Before 0.2 the package was 23 flat modules; they now live under ``core/`` (device side),
``launch/``, ``runs/``, ``driver/``, ``analysis/`` and ``cli/`` (host side). ``import
purejaxrl_ppo.sharding`` (say) raises a ``ModuleNotFoundError`` naming the new module
instead of a bare "No module named". Every public name is still importable from
``purejaxrl_ppo`` itself.
"""

from __future__ import annotations

import importlib.abc
import sys

#: old module -> where its contents live now
MOVED = {
    "purejaxrl_ppo.config": "purejaxrl_ppo.core.config (PPOConfig: purejaxrl_ppo.core.algos.ppo, "
                            "TRPOConfig: purejaxrl_ppo.core.algos.trpo)",
    "purejaxrl_ppo.train": "purejaxrl_ppo.core.loop (TrainState, TrainOutput: purejaxrl_ppo.core.types)",
    "purejaxrl_ppo.algos": "purejaxrl_ppo.core.algos",
    "purejaxrl_ppo.algos.common": "purejaxrl_ppo.core.algos.base (UpdateBatch: purejaxrl_ppo.core.types)",
    "purejaxrl_ppo.algos.ppo": "purejaxrl_ppo.core.algos.ppo",
    "purejaxrl_ppo.algos.trpo": "purejaxrl_ppo.core.algos.trpo",
    "purejaxrl_ppo.networks": "purejaxrl_ppo.core.networks",
    "purejaxrl_ppo.envs": "purejaxrl_ppo.core.envs",
    "purejaxrl_ppo.rollout": "purejaxrl_ppo.core.rollout",
    "purejaxrl_ppo.gae": "purejaxrl_ppo.core.advantages",
    "purejaxrl_ppo.normalization": "purejaxrl_ppo.core.normalization",
    "purejaxrl_ppo.evaluation": "purejaxrl_ppo.core.evaluate (policy files: purejaxrl_ppo.runs.policy_files)",
    "purejaxrl_ppo.sharding": "purejaxrl_ppo.launch.layout (train_seeds: purejaxrl_ppo.launch.seeds)",
    "purejaxrl_ppo.sweep": "purejaxrl_ppo.launch.sweep",
    "purejaxrl_ppo.runner": "purejaxrl_ppo.launch.chunked (train_durable: purejaxrl_ppo.driver.control, save_run: "
                            "purejaxrl_ppo.driver.outputs; "
                            "machine_description: purejaxrl_ppo.runs.provenance)",
    "purejaxrl_ppo.rundir": "purejaxrl_ppo.runs.rundir",
    "purejaxrl_ppo.checkpoint": "purejaxrl_ppo.runs.checkpoint",
    "purejaxrl_ppo.logging_sinks": "purejaxrl_ppo.runs.sinks",
    "purejaxrl_ppo.config_files": "purejaxrl_ppo.runs.run_files (RunOptions: purejaxrl_ppo.runs.options)",
    "purejaxrl_ppo.stats": "purejaxrl_ppo.analysis.stats",
    "purejaxrl_ppo.study_stats": "purejaxrl_ppo.analysis.study",
    "purejaxrl_ppo.render": "purejaxrl_ppo.analysis.render",
    "purejaxrl_ppo.presets": "purejaxrl_ppo.cli.presets",
    "purejaxrl_ppo._xla": "purejaxrl_ppo.platform",
    "purejaxrl_ppo._prng": "purejaxrl_ppo.platform",
    "purejaxrl_ppo.runs.durable": "purejaxrl_ppo.driver.control (save_run: purejaxrl_ppo.driver.outputs)",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that fails the import of a moved module with a message naming its new place."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            raise ModuleNotFoundError(
                f"{fullname} moved to {MOVED[fullname]} in the architecture redesign (docs/architecture.md); "
                "every public name is also available as purejaxrl_ppo.<name>",
                name=fullname,
            )
        return None


def install() -> None:
    """Add the finder once (at the end of ``sys.meta_path``: only names no other finder resolves reach it)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
