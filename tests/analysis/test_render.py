"""Videos and viewers (analysis/render.py, analysis/brax_viewer.py), ``export`` and examples/act.py on a real run.

One tiny Breakout-MinAtar run trained by ``train --video gif`` (MinAtar draws with matplotlib alone, so
nothing optional is needed) serves the tests of the evaluation video, ``render``, ``export`` and the
example. The Brax viewer's script is run by node, where node is installed, on a scene of every geom kind.
"""

import json
import runpy
import shutil
import subprocess

import jax
import numpy as np
import pytest
from PIL import Image

import purejaxrl_ppo as pjp
from helpers import ROOT
from purejaxrl_ppo.analysis import render
from purejaxrl_ppo.analysis.brax_viewer import scene_page
from purejaxrl_ppo.cli import main
from purejaxrl_ppo.core.evaluate import policy_rollout
from purejaxrl_ppo.runs import rundir

pytestmark = pytest.mark.timeout(600)

TINY = ["--env", "Breakout-MinAtar", "--num-seeds", "2", "--total-timesteps", "32", "--num-envs", "2",
        "--num-steps", "8", "--num-minibatches", "1", "--hidden-sizes", "8"]


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("video") / "breakout"
    assert main(["train", *TINY, "--video", "gif", "--quiet", "--out", str(run)]) == 0
    return run


def untrained_policy(env_name: str) -> pjp.Policy:
    """A one-seed :class:`pjp.Policy` with freshly initialised parameters (hidden size 8) for ``env_name``."""
    config = pjp.PPOConfig(env_name=env_name, hidden_sizes=(8,))
    env = pjp.make_env(config.env_name)
    params = jax.tree_util.tree_map(lambda x: np.asarray(x)[None], pjp.make_network(
        config, env.action_space, env.observation_shape).init(jax.random.PRNGKey(0)))
    return pjp.Policy(config, pjp.PolicyParams(params, None), (0,))


def episode_length(policy: pjp.Policy, seed_index: int, steps: int) -> int:
    """Steps of the first deterministic episode, from the evaluation's rollout (at most ``steps``)."""
    params = policy.params_of(seed_index)
    rollout = policy_rollout(policy.config, params.network, jax.random.PRNGKey(0), 1, steps, params.obs_stats)
    done = np.asarray(rollout.done[:, 0])
    return int(np.argmax(done)) + 1 if done.any() else steps


def gif_frames(path) -> tuple[int, int, tuple[int, int]]:
    """``(frames as shown, total duration in ms, size)``; Pillow merges repeated frames into longer ones."""
    with Image.open(path) as image:
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info["duration"])
        return len(durations), sum(durations), image.size


def test_train_writes_the_video_and_complete_json_covers_it(video_run, capsys):
    marker = json.loads((video_run / rundir.COMPLETE_FILE).read_text())
    assert "video.gif" in marker["files"] and (video_run / "video.gif").read_bytes()[:6] == b"GIF89a"
    policy = pjp.load_run(video_run)
    length = episode_length(policy, 0, render.VIDEO_MAX_FRAMES)
    _, duration, size = gif_frames(video_run / "video.gif")
    assert duration == 100 * length  # one 100 ms frame (MinAtar: 10 per second) per step of seed 0's episode
    assert max(size) <= render.VIDEO_MAX_SIDE

    damaged = video_run.parent / "damaged"
    shutil.copytree(video_run, damaged)
    (damaged / "video.gif").write_bytes(b"GIF89a")
    with pytest.raises(pjp.ConfigError, match="video.gif is damaged"):
        pjp.load_run(damaged)


def test_a_video_that_cannot_be_drawn_is_a_note_and_an_old_one_is_removed(tmp_path, capsys):
    policy = untrained_policy("DeepSea-bsuite")
    (tmp_path / "video.gif").write_bytes(b"an earlier run's")
    assert render.finish_run_video(policy, tmp_path, "gif") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: no evaluation video (DeepSea-bsuite): gymnax has no drawing of DeepSea-bsuite"]
    assert not (tmp_path / "video.gif").exists()
    assert render.finish_run_video(policy, tmp_path, "off") is None and capsys.readouterr().err == ""


def test_classic_control_draws_through_pygame_or_says_it_needs_it(tmp_path):
    policy = untrained_policy("CartPole-v1")
    note = render.write_evaluation_video(policy, tmp_path / "v.gif")
    try:
        import pygame  # noqa: F401  (the render extra)
    except ImportError:
        assert note is not None and "pygame" in note and "purejaxrl_ppo[render]" in note
        return
    assert note is None
    _, duration, size = gif_frames(tmp_path / "v.gif")
    assert duration == 50 * episode_length(policy, 0, render.VIDEO_MAX_FRAMES) and size == (400, 267)


def test_render_and_export_commands(video_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(video_run, run)
    assert main(["render", "--run", str(run), "--seed-index", "1", "--out", str(tmp_path / "one.gif")]) == 0
    assert "wrote" in capsys.readouterr().out
    _, duration, _ = gif_frames(tmp_path / "one.gif")
    assert duration == 100 * episode_length(pjp.load_run(run), 1, pjp.make_env("Breakout-MinAtar").max_episode_steps)
    assert main(["render", "--run", str(run), "--out", str(tmp_path / "x.html")]) == 2
    assert "the HTML viewer shows Brax envs" in capsys.readouterr().err

    exported = tmp_path / "breakout.msgpack"
    assert main(["export", "--run", str(run), "--out", str(exported), "--seed-index", "1"]) == 0
    assert "seed 1" in capsys.readouterr().out
    assert main(["export", "--run", str(run), "--out", str(exported)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    shutil.rmtree(run)  # the exported file stands alone
    policy = pjp.load_run(exported)
    assert policy.seed_indices == (1,) and policy.config.env_name == "Breakout-MinAtar"
    assert main(["render", "--run", str(exported)]) == 0  # default output next to the file
    assert (tmp_path / "breakout.render.gif").read_bytes()[:3] == b"GIF"

    mp4 = tmp_path / "one.mp4"
    try:
        import imageio_ffmpeg  # noqa: F401  (the render extra)
    except ImportError:
        assert main(["render", "--run", str(exported), "--out", str(mp4)]) == 2
        assert "imageio-ffmpeg" in capsys.readouterr().err
        return
    assert main(["render", "--run", str(exported), "--out", str(mp4)]) == 0
    assert mp4.read_bytes()[4:8] == b"ftyp"


def test_the_example_plays_episodes_of_a_run_and_of_an_exported_file(video_run, tmp_path, capsys):
    example = runpy.run_path(str(ROOT / "examples" / "act.py"))
    example["main"]([str(video_run), "--episodes", "2", "--seed-index", "1"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ppo on Breakout-MinAtar: 2 seed(s)") and len(out) == 3
    policy = pjp.load_run(video_run)
    params = policy.params_of(1)
    first = jax.random.split(jax.random.PRNGKey(0), 2)[0]  # the example's first episode key, for evaluate
    expected = pjp.evaluate(policy.config, params.network, first, 1, params.obs_stats)
    assert out[1].startswith(f"episode 0: return {float(expected[0]):.1f} in ")
    pjp.export_policy(policy, tmp_path / "p.msgpack", seed_index=1)
    example["main"]([str(tmp_path / "p.msgpack"), "--episodes", "2"])
    untimed = [line.rsplit(" (", 1)[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert untimed == [line.rsplit(" (", 1)[0] for line in out[1:]]  # the same seed plays the same episodes


# ----------------------------------------------------------------------------- the offline Brax viewer
HARNESS = r"""
const fs = require("fs");
const html = fs.readFileSync(process.argv[1], "utf8");
const scene = html.match(/<script type="application\/json" id="scene">([\s\S]*?)<\/script>/)[1];
const code = html.match(/<script>\n([\s\S]*?)<\/script>/)[1];
let polygons = [], current = null;
const ctx = new Proxy({}, {get: (t, k) => k in t ? t[k] : (...a) => {
  if (k === "clearRect") polygons = [];
  if (k === "beginPath") current = [];
  if (k === "moveTo" || k === "lineTo") current.push(a);
  if (k === "fill") polygons.push({points: current, color: t.fillStyle});
}, set: (t, k, v) => { t[k] = v; return true; }});
const elements = {};
const canvas = {clientWidth: 640, clientHeight: 400, getContext: () => ctx};
global.document = {getElementById: id => id === "view" ? canvas : id === "scene" ? {textContent: scene} :
  (elements[id] = elements[id] || {value: 0, textContent: "", checked: true})};
global.window = {};
let calls = 0;
global.requestAnimationFrame = f => { if (calls++ < 3) f(calls * 1000); };
new Function(code)();
console.log(JSON.stringify({polygons, label: elements.label.textContent}));
"""


def every_kind_scene() -> dict:
    """Two links (a sphere + a capsule, a box + a cylinder + a tetrahedron mesh) over the ground, two frames."""
    identity = [1.0, 0.0, 0.0, 0.0]
    geoms = [
        {"type": "Plane", "link": -1, "size": [0, 0, 1], "pos": [0, 0, 0], "rot": identity, "rgba": [1, 1, 1, 1]},
        {"type": "Sphere", "link": 0, "size": [0.2, 0, 0], "pos": [0, 0, 0], "rot": identity, "rgba": [1, 0, 0, 1]},
        {"type": "Capsule", "link": 0, "size": [0.05, 0.3, 0], "pos": [0, 0, -0.4], "rot": identity,
         "rgba": [0, 1, 0, 1]},
        {"type": "Box", "link": 1, "size": [0.1, 0.2, 0.3], "pos": [0, 0, 0], "rot": identity, "rgba": [0, 0, 1, 1]},
        {"type": "Cylinder", "link": 1, "size": [0.1, 0.2, 0], "pos": [0.3, 0, 0], "rot": [0.7071, 0.7071, 0, 0],
         "rgba": [1, 1, 0, 1]},
        {"type": "Mesh", "link": 1, "size": [1, 1, 1], "pos": [-0.3, 0, 0], "rot": identity, "rgba": [0, 1, 1, 1],
         "vert": [[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]],
         "face": [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]},
    ]
    pos = [[[0, 0, 1], [1, 0, 0.5]], [[0.1, 0, 1], [1.1, 0, 0.5]]]
    return {"dt": 0.05, "geoms": geoms, "pos": pos, "rot": [[identity, identity]] * 2}


def test_the_brax_page_needs_no_network_and_its_script_draws_every_geom():
    page = scene_page(every_kind_scene(), "scene </script> test")
    assert "http" not in page and " src=" not in page and "import " not in page  # nothing loaded from anywhere
    assert page.count("</script>") == 2  # the title and the data cannot close a script early
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's script was not run")
    html = ROOT / "build-viewer-test.html"
    try:
        html.write_text(page)
        result = subprocess.run([node, "-e", HARNESS, str(html)], capture_output=True, text=True, timeout=60)
    finally:
        html.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr
    drawn = json.loads(result.stdout)
    colours = {p["color"] for p in drawn["polygons"]}
    ground = {"#c9c2b4", "#b3ab9b"}  # the checkerboard, which runs past the canvas's edges
    points = np.array([pt for p in drawn["polygons"] if p["color"] not in ground for pt in p["points"]])
    assert np.isfinite(points).all() and (points >= 0).all() and (points <= [640, 400]).all()  # solids in view
    for rgb in ("255,0,0", "0,255,0", "0,0,255", "255,255,0", "0,255,255"):  # each solid, shaded: some face lit fully
        assert any(c.startswith("rgba(") and _hue(c) == rgb for c in colours), rgb
    assert ground <= colours
    assert drawn["label"].startswith("step ") and drawn["label"].split()[3] == "2"


def _hue(colour: str) -> str:
    """The colour channels of ``rgba(r,g,b,a)`` scaled so the largest is 255 (shading removed)."""
    r, g, b = (float(x) for x in colour[5:-1].split(",")[:3])
    top = max(r, g, b) or 1.0
    return ",".join(str(round(255 * x / top)) for x in (r, g, b))


@pytest.mark.heavy
def test_render_writes_an_offline_page_for_a_brax_policy(tmp_path):
    policy = untrained_policy("brax/inverted_pendulum")
    states, rewards = render.deterministic_episode(policy, 0, jax.random.PRNGKey(0), 20)
    page = render._brax_page(policy, states, "offline")
    assert "http" not in page
    scene = json.loads(page.split('id="scene">')[1].split("</script>")[0])
    assert len(scene["pos"]) == len(states) == len(rewards) and {g["type"] for g in scene["geoms"]} == {"Capsule"}
