"""Look at a trained policy: a video (GIF or MP4) of one deterministic episode, or an HTML viewer for Brax.

:func:`render_run` (``python -m purejaxrl_ppo render``) loads a run directory or an exported
policy file (:func:`~purejaxrl_ppo.runs.policy_files.load_run`), rolls out one episode of
one seed's deterministic policy (:func:`~purejaxrl_ppo.core.evaluate.policy_rollout`, the
evaluation's actions) and writes, by the output's suffix:

* ``.html`` (the default for ``brax/...`` envs): a page that replays the episode in 3-D with
  no network (:mod:`purejaxrl_ppo.analysis.brax_viewer`), or, with ``viewer="brax"``, Brax's
  own viewer (``brax.io.html.render``), which loads three.js and its scripts from CDNs;
* ``.gif`` (the default for gymnax envs; Pillow, always installed) or ``.mp4`` (needs
  ``imageio`` and ``imageio-ffmpeg``: ``pip install 'purejaxrl_ppo[render]'``).

What can be drawn with which packages (:func:`drawing_problem` says why not, in one line):

* gymnax classic control (CartPole, Pendulum, Acrobot, MountainCar): gymnasium's renderer,
  which needs ``pygame`` (the ``render`` extra);
* MinAtar, Catch-bsuite and the other envs gymnax's ``Visualizer`` draws: matplotlib alone;
* Brax videos: MuJoCo's renderer, which needs an OpenGL context (on a machine without a
  display start Python with ``MUJOCO_GL=egl``); the HTML viewer needs nothing.

:func:`write_evaluation_video` is what a finished run calls (``RunOptions.video``): the same
episode of seed 0, at most :data:`VIDEO_MAX_FRAMES` frames, or a one-line note saying why not.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxrl_ppo.core.acting import Policy
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.core.envs import ObservationMask, is_brax_name
from purejaxrl_ppo.core.envs.base import Env
from purejaxrl_ppo.core.evaluate import policy_rollout
from purejaxrl_ppo.runs.policy_files import load_run

#: Video formats :func:`write_video` writes, by suffix.
VIDEO_SUFFIXES = (".gif", ".mp4")
#: The evaluation videos a finished run may hold (``RunOptions.video``).
VIDEO_FILES = ("video.gif", "video.mp4")
#: A finished run's evaluation video shows at most this many steps (25 s at 20 frames per second).
VIDEO_MAX_FRAMES = 500
#: Frames are scaled down so that their longer side is at most this many pixels.
VIDEO_MAX_SIDE = 400
#: gymnax envs that gymnasium's classic-control renderer draws (gymnax.visualize.vis_gym, through pygame).
CLASSIC_CONTROL = ("Acrobot-v1", "CartPole-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0")
#: gymnax envs that gymnax 1.0's ``Visualizer`` draws with matplotlib alone (its ``init``/``update`` cases).
MATPLOTLIB_DRAWN = ("Catch-bsuite", "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar",
                    "SpaceInvaders-MinAtar", "Pong-misc", "PointRobot-misc", "MetaMaze-misc", "FourRooms-misc")
_RENDER_EXTRA = "pip install 'purejaxrl_ppo[render]'"


# ----------------------------------------------------------------------------- one deterministic episode
def deterministic_episode(policy: Policy, seed_index: int = 0, key: jax.Array | None = None,
                          max_steps: int | None = None) -> tuple[list[Any], np.ndarray]:
    """``(states, rewards [L])`` of one episode of seed ``seed_index``'s deterministic policy.

    states: the inner env's state before each of the ``L`` steps (what the drawings read);
    the episode ends at termination, truncation or after ``max_steps`` steps (default: the
    env's episode limit). The actions are :func:`~purejaxrl_ppo.core.evaluate.policy_rollout`'s.
    """
    params = policy.params_of(seed_index)
    steps = policy.env.max_episode_steps if max_steps is None else min(max_steps, policy.env.max_episode_steps)
    key = jax.random.PRNGKey(0) if key is None else key
    rollout = jax.jit(lambda k: policy_rollout(policy.config, params.network, k, 1, steps, params.obs_stats))(key)
    done = np.asarray(rollout.done[:, 0])
    length = int(np.argmax(done)) + 1 if done.any() else steps
    inner = jax.device_get(rollout.env_state.env_state)  # EpisodeStatistics' inner state, [T, 1, ...]
    states = [jax.tree_util.tree_map(lambda x: x[t, 0], inner) for t in range(length)]
    return states, np.asarray(rollout.reward[:length, 0])


def _drawn_env(env: Env) -> Any:
    """The adapter that draws: below the episode statistics and any observation mask (same states)."""
    inner = env.env
    while isinstance(inner, ObservationMask):
        inner = inner.env
    return inner


# ----------------------------------------------------------------------------- what can be drawn here
def drawing_problem(env: Env) -> str | None:
    """``None`` if :func:`episode_frames` can draw ``env`` with the installed packages, else why not (one line)."""
    inner = _drawn_env(env)
    if is_brax_name(getattr(inner, "name", "")):
        return _opengl_problem(inner.sys.mj_model)
    name = inner.name
    if name in CLASSIC_CONTROL:
        missing = [m for m in ("pygame", "gymnasium") if importlib.util.find_spec(m) is None]
        return f"{name} draws through gymnasium and pygame ({_RENDER_EXTRA})" if missing else None
    if name in MATPLOTLIB_DRAWN:
        return None
    return f"gymnax has no drawing of {name}"


def _opengl_problem(mj_model: Any) -> str | None:
    """Why MuJoCo cannot render here (no OpenGL context), or ``None``."""
    import mujoco

    try:
        with warnings.catch_warnings():  # GLFW warns (as well as failing) where there is no display
            warnings.simplefilter("ignore")
            renderer = mujoco.Renderer(mj_model, 8, 8)
    except Exception as err:  # noqa: BLE001 - FatalError, ImportError, RuntimeError by platform
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        return (f"MuJoCo cannot open an OpenGL context here ({first}); on a machine without a display start Python "
                "with MUJOCO_GL=egl (or osmesa); `render` writes an HTML viewer that needs none")
    renderer.close()
    return None


# ----------------------------------------------------------------------------- frames
def episode_frames(env: Env, states: list[Any], rewards: np.ndarray) -> tuple[list[np.ndarray], float]:
    """``(frames, fps)``: one ``[H, W, 3]`` uint8 image per state; a :class:`ConfigError` if it cannot be drawn."""
    problem = drawing_problem(env)
    if problem is not None:
        raise ConfigError(f"cannot draw this episode: {problem}")
    inner = _drawn_env(env)
    if is_brax_name(inner.name):
        frames, fps = _brax_frames(inner, states), 1.0 / (float(inner.env.dt) * inner.spec.action_repeat)
    elif inner.name in CLASSIC_CONTROL:
        frames, fps = _classic_control_frames(inner, states), 20.0
    else:
        frames, fps = _visualizer_frames(inner, states, rewards), 10.0
    return [_shrink(f) for f in frames], fps


def _shrink(frame: np.ndarray) -> np.ndarray:
    """``frame`` scaled down (area averaging) until its longer side is at most :data:`VIDEO_MAX_SIDE`."""
    height, width = frame.shape[:2]
    scale = VIDEO_MAX_SIDE / max(height, width)
    if scale >= 1:
        return np.ascontiguousarray(frame[..., :3])
    from PIL import Image

    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame[..., :3])).resize(size, Image.Resampling.BOX))


def _classic_control_frames(gymnax_env: Any, states: list[Any]) -> list[np.ndarray]:
    """gymnasium's own drawing of each state, through one gymnasium env (gymnax's mapping of states and params)."""
    import os

    # gymnasium starts pygame, whose SDL would look for a display and a sound card (and print errors
    # without them): off-screen drawing needs neither.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    import gymnasium
    from gymnax.visualize import vis_gym

    name = gymnax_env.name
    env = gymnasium.make(name, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        unwrapped = env.unwrapped
        vis_gym.set_gym_params(unwrapped, name, gymnax_env.params)
        frames = []
        for state in states:
            unwrapped.state = vis_gym.get_gym_state(state, name)
            if name == "Pendulum-v1":
                unwrapped.last_u = np.asarray(state.last_u, np.float64)
            frames.append(np.asarray(env.render()))
    finally:
        env.close()
    return frames


def _visualizer_frames(gymnax_env: Any, states: list[Any], rewards: np.ndarray) -> list[np.ndarray]:
    """gymnax's matplotlib ``Visualizer``, one frame grabbed per state (its ``animate`` saved empty GIFs here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gymnax.visualize import Visualizer

    vis = Visualizer(gymnax_env.env, gymnax_env.params, states, np.cumsum(rewards))
    try:
        vis.fig.set_dpi(VIDEO_MAX_SIDE / max(vis.fig.get_size_inches()))
        vis.init()
        frames = []
        for t in range(len(states)):
            vis.update(t)
            vis.fig.canvas.draw()
            frames.append(np.asarray(vis.fig.canvas.buffer_rgba())[..., :3].copy())
    finally:
        plt.close(vis.fig)
    return frames


def _brax_frames(brax_env: Any, states: list[Any]) -> list[np.ndarray]:
    """MuJoCo's rendering of each physics state (needs an OpenGL context: :func:`drawing_problem`).

    Seen through the model's camera named ``track`` where it has one (Brax's locomotion tasks: it
    follows the body), else MuJoCo's free camera.
    """
    import mujoco
    from brax.io import image

    model = brax_env.sys.mj_model
    camera = "track" if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track") >= 0 else None
    pipeline = [brax_env.pipeline_state(s) for s in states]
    return list(image.render_array(brax_env.sys, pipeline, height=240, width=320, camera=camera))


# ----------------------------------------------------------------------------- files
def write_video(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """Write ``frames`` (each ``[H, W, 3]`` uint8) as a GIF (Pillow) or an MP4 (imageio-ffmpeg), by suffix.

    Written to a temporary name in the same folder and renamed: the file is whole or absent.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ConfigError(f"{path}: a video is written as one of {', '.join(VIDEO_SUFFIXES)}")
    if not frames:
        raise ConfigError(f"{path}: no frames to write")
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")
    (_write_gif if suffix == ".gif" else _write_mp4)(frames, tmp, fps)
    tmp.replace(path)


def _write_gif(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """One palette for the whole clip (from a sample of frames), no dithering: quick, and no flicker.

    GIF delays are whole hundredths of a second and players hold at least 20 ms, so a clip faster
    than 50 frames per second keeps every k-th frame (it still plays in real time).
    """
    from PIL import Image

    keep = max(1, math.ceil(fps / 50))
    frames, fps = frames[::keep], fps / keep

    sample = np.concatenate(frames[:: max(1, len(frames) // 8)], axis=0)
    palette = Image.fromarray(sample).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    duration = max(20, 10 * round(100 / fps))  # GIF delays are in 10 ms steps
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0, optimize=False)


def _write_mp4(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """H.264 through imageio-ffmpeg; frames are padded (edge pixels) to multiples of 16, as most players need."""
    if importlib.util.find_spec("imageio") is None or importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ConfigError(f"{path}: writing MP4 needs imageio and imageio-ffmpeg ({_RENDER_EXTRA}); or write a .gif")
    import imageio.v3 as iio

    height, width = frames[0].shape[:2]
    pad = ((0, -height % 16), (0, -width % 16), (0, 0))
    video = np.stack([np.pad(f, pad, mode="edge") for f in frames])
    with warnings.catch_warnings():  # ffmpeg runs as a subprocess; jax warns about any fork in its process
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        iio.imwrite(path, video, extension=".mp4", fps=fps, codec="libx264", macro_block_size=16)


def write_evaluation_video(policy: Policy, path: Path, key: jax.Array | None = None) -> str | None:
    """Write a video of seed 0's deterministic episode (at most :data:`VIDEO_MAX_FRAMES` steps) to ``path``.

    Returns ``None`` when written, else a one-line note saying why not (the env cannot be drawn
    with the installed packages, or the format needs a package): a run never fails for its video.
    """
    problem = drawing_problem(policy.env)
    if problem is None and Path(path).suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        problem = f"MP4 needs imageio and imageio-ffmpeg ({_RENDER_EXTRA}); --video gif needs nothing more"
    if problem is not None:
        return problem
    states, rewards = deterministic_episode(policy, 0, key, VIDEO_MAX_FRAMES)
    frames, fps = episode_frames(policy.env, states, rewards)
    write_video(frames, path, fps)
    return None


def finish_run_video(policy: Policy, run_dir: Path, video: str) -> Path | None:
    """A finished run's ``RunOptions.video`` step: ``run_dir/video.<video>``, or ``None`` and one note on stderr.

    video: ``"off"``, ``"gif"`` or ``"mp4"``. Nothing here fails the run: a video that cannot
    be drawn or written becomes a note. A video of an earlier run in ``run_dir`` that this one
    does not rewrite is removed, so every video in a finished run is one ``complete.json`` covers.
    """
    path = None if video == "off" else Path(run_dir) / f"video.{video}"
    if path is not None:
        try:
            note = write_evaluation_video(policy, path)
        except Exception as err:  # noqa: BLE001 - a drawing failure must not lose a trained run
            note = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        if note is not None:
            print(f"note: no evaluation video ({policy.config.env_name}): {note}", file=sys.stderr, flush=True)
            path = None
    for name in VIDEO_FILES:
        if path is None or name != path.name:
            (Path(run_dir) / name).unlink(missing_ok=True)
    return path


def render_run(run: Path, out: Path | None = None, seed_index: int = 0, seed: int = 0,
               viewer: str = "offline") -> tuple[Path, float, int]:
    """Render one deterministic episode of a saved run or an exported policy; returns ``(path, return, length)``.

    out: ``.html`` (Brax envs only), ``.gif`` or ``.mp4``; default ``<run>/render.html`` for
    Brax, ``<run>/render.gif`` otherwise (next to an exported file: ``<file stem>.render.*``).
    viewer: for ``.html``, ``"offline"`` (self-contained) or ``"brax"`` (Brax's viewer, loads from CDNs).
    """
    run = Path(run)
    policy = load_run(run)
    brax = is_brax_name(policy.config.env_name)
    if out is None:
        suffix = ".html" if brax else ".gif"
        out = run / f"render{suffix}" if run.is_dir() else run.with_name(f"{run.stem}.render{suffix}")
    out = Path(out)
    if out.suffix.lower() not in (*VIDEO_SUFFIXES, ".html"):
        raise ConfigError(f"--out {out}: write .html (Brax envs), .gif or .mp4")
    if viewer not in ("offline", "brax"):
        raise ConfigError(f"viewer must be 'offline' or 'brax', got {viewer!r}")
    if out.suffix.lower() == ".html" and not brax:
        raise ConfigError(f"--out {out}: the HTML viewer shows Brax envs; write a .gif or .mp4 of "
                          f"{policy.config.env_name}")
    states, rewards = deterministic_episode(policy, seed_index, jax.random.PRNGKey(seed))
    if out.suffix.lower() == ".html":
        out.write_text(_brax_page(policy, states, viewer))
    else:
        frames, fps = episode_frames(policy.env, states, rewards)
        write_video(frames, out, fps)
    return out, float(rewards.sum()), len(states)


def _brax_page(policy: Policy, states: list[Any], viewer: str) -> str:
    inner = _drawn_env(policy.env)
    pipeline = [inner.pipeline_state(s) for s in states]
    if viewer == "brax":
        from brax.io import html

        return html.render(inner.sys, pipeline)
    from purejaxrl_ppo.analysis.brax_viewer import viewer_html

    dt = float(inner.env.dt) * inner.spec.action_repeat
    return viewer_html(inner.sys, pipeline, dt, title=f"{policy.config.env_name}: {policy.config.algo_name.upper()}")

