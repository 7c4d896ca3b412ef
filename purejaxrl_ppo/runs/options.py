"""How a run is executed and recorded (seeds, chunking, checkpoints, logging): :class:`RunOptions`."""

from __future__ import annotations

import dataclasses
from typing import Any

from purejaxrl_ppo.core.config import COUNT, NON_NEGATIVE, NON_NEGATIVE_COUNT, Validated, field


@dataclasses.dataclass(frozen=True)
class RunOptions(Validated):
    """How a run is executed and recorded; none of these change its results.

    Chunking only decides where the host may checkpoint, log and show progress
    between compiled chunks: any plan gives bit-identical results. The device
    count changes how many seeds a device vmaps at once, and with it the last
    float bits, which training amplifies into different per-seed results over
    a long run (the same distribution over seeds); ``seeds_per_batch`` fixes
    that number, making every seed's results bit-identical on any device count.
    """

    num_seeds: int = field(8, "independent seeds, split over every local device and vmapped", bounds=COUNT)
    seed: int = field(0, "master seed; seed i uses split(PRNGKey(seed))[i]")
    seeds_per_batch: int = field(
        0, "vmap this many seeds at a time per device (sequential blocks, less memory; fixed blocks give "
        "bit-identical results on any device count); 0 = all at once", bounds=NON_NEGATIVE_COUNT,
    )
    progress_chunks: int = field(20, "about how many compiled chunks (progress, log and checkpoint points)", bounds=COUNT)
    chunk_updates: int = field(0, "updates per compiled chunk; 0 = use progress_chunks", bounds=NON_NEGATIVE_COUNT)
    checkpoint_every: int = field(1, "save a checkpoint every this many chunks (and after the last)", bounds=COUNT)
    keep_checkpoints: int = field(3, "keep the newest this many checkpoints", bounds=COUNT)
    tensorboard: bool = field(False, "also write TensorBoard event files (needs tensorboardX)")
    wandb: bool = field(False, "also log to Weights & Biases (needs wandb; WANDB_MODE=offline works without network)")
    wandb_project: str = field("purejaxrl_ppo", "Weights & Biases project")
    log_seeds: int = field(
        16, "per-seed curves for at most this many seeds in TensorBoard/W&B (CSV/JSONL hold all)",
        bounds=NON_NEGATIVE_COUNT,
    )
    video: str = field(
        "off", "after training, write video.gif or video.mp4 (MP4 needs the render extra) of seed 0's deterministic "
        "episode, at most 500 steps; where the env cannot be drawn with the installed packages, a note says why "
        "and the run finishes without it", choices=("off", "gif", "mp4"),
    )

    collapse_entropy: float = field(
        1e-3, "warn when a seed's policy entropy falls below this (discrete actions: a collapsed, deterministic "
        "policy); 0 = off", bounds=NON_NEGATIVE,
    )
    collapse_value_loss: float = field(
        1e8, "warn when a seed's value loss exceeds this (exploding value estimates); 0 = off", bounds=NON_NEGATIVE,
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
