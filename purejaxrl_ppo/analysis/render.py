"""Look at a trained policy: Brax rollouts as Brax's HTML viewer, gymnax ones as a GIF.

``render_run(run_dir)`` reads ``config.json`` and ``policy.msgpack`` from a run
directory written by ``python -m purejaxrl_ppo train``, rolls out one episode
of the deterministic policy of one seed and writes

* ``render.html`` for ``brax/...`` envs (``brax.io.html.render``), or
* ``render.gif`` for gymnax envs that ``gymnax.visualize.Visualizer`` can draw:
  MinAtar games and Catch-bsuite with matplotlib alone; classic control
  (CartPole, Pendulum, Acrobot, MountainCar) only with ``pygame`` installed,
  which gymnasium's renderer needs (not a dependency of this package).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from purejaxrl_ppo.core.algos import config_from_dict
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.core.envs import ObservationMask, is_brax_name, make_env
from purejaxrl_ppo.core.evaluate import policy_rollout
from purejaxrl_ppo.runs.policy_files import POLICY_FILE, load_policy, select_seed
from purejaxrl_ppo.runs.rundir import require_finished


def load_run(run_dir: Path, seed_index: int = 0):
    """``(config, params, obs_stats)`` of seed ``seed_index`` of a saved run.

    An unfinished or damaged run is a one-line :class:`ConfigError` (from
    :func:`~purejaxrl_ppo.runs.rundir.require_finished`) naming what is missing and the repair.
    """
    require_finished(run_dir)
    config_path, policy_path = run_dir / "config.json", run_dir / POLICY_FILE
    for path in (config_path, policy_path):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; is {run_dir} a run directory written by `train`?")
    values = json.loads(config_path.read_text())
    values.pop("algo_kwargs", None)
    config = config_from_dict(values)
    params, obs_stats = load_policy(policy_path)
    num_seeds = jax.tree_util.tree_leaves(params)[0].shape[0]
    if not 0 <= seed_index < num_seeds:
        raise ConfigError(f"--seed-index must be in [0, {num_seeds}), got {seed_index}")
    stats = None if obs_stats is None else select_seed(obs_stats, seed_index)
    return config, select_seed(params, seed_index), stats


def _episode(config, params, obs_stats, key: jax.Array):
    """States of one episode (before each step) and its return."""
    env = make_env(config.env_name)
    steps = env.max_episode_steps
    rollout = jax.jit(lambda k: policy_rollout(config, params, k, 1, steps, obs_stats))(key)
    done = np.asarray(rollout.done[:, 0])
    length = int(np.argmax(done)) + 1 if done.any() else steps
    states = [jax.tree_util.tree_map(lambda x: x[t, 0], rollout.env_state.env_state) for t in range(length)]
    return env, states, np.asarray(rollout.reward[:length, 0]), length


def render_run(run_dir: Path, out: Path | None = None, seed_index: int = 0, seed: int = 0) -> tuple[Path, float, int]:
    """Render one deterministic episode of a saved run; returns ``(path, return, length)``."""
    config, params, obs_stats = load_run(run_dir, seed_index)
    env, states, rewards, length = _episode(config, params, obs_stats, jax.random.PRNGKey(seed))
    if is_brax_name(config.env_name):
        from brax.io import html

        out = out or run_dir / "render.html"
        inner = env.env
        out.write_text(html.render(inner.sys, [inner.pipeline_state(s) for s in states]))
    else:
        out = out or run_dir / "render.gif"
        try:
            inner = env.env
            while isinstance(inner, ObservationMask):  # a masked env draws as its full env (same states)
                inner = inner.env
            write_gymnax_gif(inner, states, rewards, out)
        except Exception as err:  # gymnax draws only some envs, some through optional packages
            raise ConfigError(f"gymnax cannot render {config.env_name}: {type(err).__name__}: {err}") from None
    return out, float(rewards.sum()), length


def write_gymnax_gif(gymnax_env, states: list, rewards: np.ndarray, out: Path) -> None:
    """Draw every state with gymnax's ``Visualizer`` and write the frames as a GIF.

    The frames are grabbed one by one (gymnax's own ``animate`` saved an empty
    GIF with our matplotlib). Classic-control envs draw through gymnasium and
    need ``pygame``; MinAtar and bsuite envs need only matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gymnax.visualize import Visualizer
    from PIL import Image

    vis = Visualizer(gymnax_env.env, gymnax_env.params, states, np.cumsum(rewards))
    try:
        vis.init()
        frames = []
        for t in range(len(states)):
            vis.update(t)
            vis.fig.canvas.draw()
            frames.append(Image.fromarray(np.asarray(vis.fig.canvas.buffer_rgba())).convert("RGB"))
    finally:
        plt.close(vis.fig)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=vis.interval, loop=0)
