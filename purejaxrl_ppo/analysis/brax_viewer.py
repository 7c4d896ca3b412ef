"""A self-contained HTML page that replays a Brax trajectory in 3-D: no network, no third-party script.

Brax's own viewer (``brax.io.html.render``) needs the network: its page imports three.js,
three.js's OrbitControls, lil-gui, pako and es-module-shims from unpkg/jsdelivr, and its own
``viewer.js`` from jsdelivr. The brax 0.14.2 wheel ships ``brax/visualizer/js/*.js`` (Apache-2.0)
but none of those libraries, and its scripts are written against three.js, so inlining them
is not enough. This page instead carries its own small renderer (written for this package):
the geometry of Brax's JSON export (:func:`brax.io.json.dumps`: geoms per link with their
local pose, size and colour, and every frame's link positions and rotations) drawn on a 2-D
canvas as flat-shaded triangles sorted back to front, with a perspective camera that follows
the first link. Spheres, capsules, cylinders, boxes, meshes and the ground plane are drawn;
height maps are not. Drag to orbit, scroll to zoom; play/pause, step slider and speed below.
"""

from __future__ import annotations

import html
import json
from typing import Any

#: Coordinates are rounded to this many decimals in the page (0.1 mm): a third of the size, no visible change.
DECIMALS = 4


def scene_data(sys: Any, pipeline_states: list[Any], dt: float) -> dict[str, Any]:
    """What the page draws, from Brax's JSON export of ``sys`` and the physics states.

    Returns ``{"dt": seconds per frame, "geoms": [{"type", "link", "size", "pos", "rot", "rgba"
    (+ "vert", "face" for meshes)}], "pos": [T][L][3], "rot": [T][L][4]}``; ``link`` -1 is the
    world frame, rotations are quaternions (w, x, y, z), z is up.
    """
    from brax.io import json as brax_json

    exported = json.loads(brax_json.dumps(sys, pipeline_states))
    geoms = []
    for items in exported["geoms"].values():
        for g in items:
            geom = {"type": g["name"], "link": g["link_idx"], "size": g["size"], "pos": g["pos"], "rot": g["rot"],
                    "rgba": g["rgba"]}
            if g["name"] == "Mesh":
                geom["vert"], geom["face"] = g["vert"], g["face"]
            geoms.append(geom)
    frames = exported["states"]["x"]
    return _rounded({"dt": float(dt), "geoms": geoms, "pos": [f["pos"] for f in frames],
                     "rot": [f["rot"] for f in frames]})


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def viewer_html(sys: Any, pipeline_states: list[Any], dt: float, title: str = "Brax trajectory") -> str:
    """The page (one string) replaying ``pipeline_states`` of ``sys``, ``dt`` seconds apart."""
    return scene_page(scene_data(sys, pipeline_states, dt), title)


def scene_page(scene: dict[str, Any], title: str) -> str:
    """The page for a scene in :func:`scene_data`'s form (the renderer and the data inline, nothing fetched)."""
    data = json.dumps(scene, separators=(",", ":")).replace("</", "<\\/")  # no "</script>" inside the data
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__SCENE__", data)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  body { margin: 0; font: 14px sans-serif; background: #f4f4f4; }
  #bar { padding: 6px 10px; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
  #view { display: block; width: 100vw; height: calc(100vh - 44px); background: #dfe8f0; cursor: grab; }
  #t { flex: 1; min-width: 160px; }
</style>
</head>
<body>
<div id="bar">
  <b>__TITLE__</b>
  <button id="play">pause</button>
  <input id="t" type="range" min="0" value="0">
  <span id="label"></span>
  <label>speed <select id="speed"><option>0.25</option><option>0.5</option><option selected>1</option>
    <option>2</option><option>4</option></select></label>
  <label><input id="follow" type="checkbox" checked> follow</label>
  <span>drag: orbit, wheel: zoom</span>
</div>
<canvas id="view"></canvas>
<script type="application/json" id="scene">__SCENE__</script>
<script>
"use strict";
const S = JSON.parse(document.getElementById("scene").textContent);
const T = S.pos.length;

// ---- quaternions (w, x, y, z) and vectors
function qmul(a, b) {
  return [a[0]*b[0] - a[1]*b[1] - a[2]*b[2] - a[3]*b[3], a[0]*b[1] + a[1]*b[0] + a[2]*b[3] - a[3]*b[2],
          a[0]*b[2] - a[1]*b[3] + a[2]*b[0] + a[3]*b[1], a[0]*b[3] + a[1]*b[2] - a[2]*b[1] + a[3]*b[0]];
}
function qrot(q, v) {  // v' = q v q*
  const [w, x, y, z] = q;
  const tx = 2 * (y*v[2] - z*v[1]), ty = 2 * (z*v[0] - x*v[2]), tz = 2 * (x*v[1] - y*v[0]);
  return [v[0] + w*tx + y*tz - z*ty, v[1] + w*ty + z*tx - x*tz, v[2] + w*tz + x*ty - y*tx];
}
const add = (a, b) => [a[0]+b[0], a[1]+b[1], a[2]+b[2]];
const sub = (a, b) => [a[0]-b[0], a[1]-b[1], a[2]-b[2]];
const dot = (a, b) => a[0]*b[0] + a[1]*b[1] + a[2]*b[2];
const cross = (a, b) => [a[1]*b[2]-a[2]*b[1], a[2]*b[0]-a[0]*b[2], a[0]*b[1]-a[1]*b[0]];
const unit = a => { const n = Math.hypot(a[0], a[1], a[2]) || 1; return [a[0]/n, a[1]/n, a[2]/n]; };

// ---- triangle meshes in the geom's frame: {v: [[x, y, z]], f: [[i, j, k]]}
function lathe(rings, cols) {  // a surface of revolution about z through rings [[radius, z]], top to bottom
  const v = [], f = [];
  for (const [r, z] of rings) for (let j = 0; j < cols; j++) {
    const ph = 2 * Math.PI * j / cols;
    v.push([r * Math.cos(ph), r * Math.sin(ph), z]);
  }
  for (let i = 0; i + 1 < rings.length; i++) for (let j = 0; j < cols; j++) {
    const a = i*cols + j, b = i*cols + (j+1) % cols, c = a + cols, d = b + cols;
    f.push([a, c, b], [b, c, d]);
  }
  return {v, f};
}
function capsule(r, half, rows) {  // a sphere (half 0) or two hemispheres 2*half apart, axis z
  const rings = [];
  for (let i = 0; i <= rows; i++) {
    const th = Math.PI * i / rows;
    rings.push([r * Math.sin(th), r * Math.cos(th) + half]);
    if (half > 0 && 2 * i === rows) rings.push([r, -half]);  // the cylinder between the hemispheres
    if (half > 0 && 2 * i > rows) rings[rings.length - 1][1] -= 2 * half;
  }
  return lathe(rings, 14);
}
function boxMesh(s) {
  const v = [];
  for (const x of [-1, 1]) for (const y of [-1, 1]) for (const z of [-1, 1]) v.push([x*s[0], y*s[1], z*s[2]]);
  const q = [[0,1,3,2],[4,6,7,5],[0,4,5,1],[2,3,7,6],[0,2,6,4],[1,5,7,3]], f = [];
  for (const [a, b, c, d] of q) f.push([a, b, c], [a, c, d]);
  return {v, f};
}
function meshOf(g) {
  switch (g.type) {
    case "Sphere": return capsule(g.size[0], 0, 8);
    case "Capsule": return capsule(g.size[0], g.size[1], 8);
    case "Cylinder": { const [r, h] = g.size; return lathe([[0, h], [r, h], [r, -h], [0, -h]], 16); }
    case "Box": return boxMesh(g.size);
    case "Mesh": return {v: g.vert, f: g.face};
    default: return null;  // Plane (drawn as the ground), HeightMap (not drawn)
  }
}
const solids = S.geoms.filter(g => g.type !== "Plane").map(g => ({g, m: meshOf(g)})).filter(s => s.m);
const ground = S.geoms.find(g => g.type === "Plane");

// ---- camera: orbit around a target, z up
const canvas = document.getElementById("view"), ctx = canvas.getContext("2d");
const cam = {az: -Math.PI / 2, el: 0.35, dist: 4, fov: 0.8};
const light = unit([0.4, -0.6, 0.9]);
let t = 0, playing = true, speed = 1, follow = true, last = null;
const start = S.pos[0][0] || [0, 0, 0];
let target = start.slice();

function camera() {
  const eye = add(target, [cam.dist*Math.cos(cam.el)*Math.cos(cam.az), cam.dist*Math.cos(cam.el)*Math.sin(cam.az),
                           cam.dist*Math.sin(cam.el)]);
  const fwd = unit(sub(target, eye)), right = unit(cross(fwd, [0, 0, 1])), up = cross(right, fwd);
  const focal = canvas.height / (2 * Math.tan(cam.fov / 2));
  return p => {
    const d = sub(p, eye), z = dot(d, fwd);
    return [canvas.width/2 + focal*dot(d, right)/z, canvas.height/2 - focal*dot(d, up)/z, z];
  };
}
function shade(rgba, n) {
  const k = 0.35 + 0.65 * Math.abs(dot(n, light));
  return `rgba(${Math.round(255*rgba[0]*k)},${Math.round(255*rgba[1]*k)},${Math.round(255*rgba[2]*k)},${rgba[3]})`;
}
function pose(g, frame) {  // the geom's world position and rotation
  if (g.link < 0) return [g.pos, g.rot];
  const lp = S.pos[frame][g.link], lq = S.rot[frame][g.link];
  return [add(lp, qrot(lq, g.pos)), qmul(lq, g.rot)];
}
function polygons(frame, project) {  // [depth, [[x, y]...], fill] of every visible triangle
  const out = [];
  for (const {g, m} of solids) {
    const [p, q] = pose(g, frame);
    const world = m.v.map(v => add(p, qrot(q, v))), screen = world.map(project);
    for (const [a, b, c] of m.f) {
      if (screen[a][2] < 0.05 || screen[b][2] < 0.05 || screen[c][2] < 0.05) continue;
      const n = unit(cross(sub(world[b], world[a]), sub(world[c], world[a])));
      out.push([(screen[a][2] + screen[b][2] + screen[c][2]) / 3, [screen[a], screen[b], screen[c]], shade(g.rgba, n)]);
    }
  }
  return out;
}
function groundTiles(project) {  // a checkerboard of 0.5 m tiles around the target, at the plane's height
  if (!ground) return [];
  const out = [], z = ground.pos[2], s = 0.5, n = 24, cx = Math.round(target[0]/s), cy = Math.round(target[1]/s);
  for (let i = -n; i < n; i++) for (let j = -n; j < n; j++) {
    const x0 = (cx + i) * s, y0 = (cy + j) * s;
    const c = [[x0, y0, z], [x0+s, y0, z], [x0+s, y0+s, z], [x0, y0+s, z]].map(project);
    if (c.some(p => p[2] < 0.05)) continue;
    out.push([c.reduce((a, p) => a + p[2], 0) / 4, c, (i + j) & 1 ? "#c9c2b4" : "#b3ab9b"]);
  }
  return out;
}
function fill(polys) {
  polys.sort((a, b) => b[0] - a[0]);
  for (const [, pts, color] of polys) {
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (let k = 1; k < pts.length; k++) ctx.lineTo(pts[k][0], pts[k][1]);
    ctx.closePath();
    ctx.fillStyle = color; ctx.strokeStyle = color; ctx.lineWidth = 0.5;
    ctx.fill(); ctx.stroke();
  }
}
function draw() {
  const frame = Math.min(T - 1, Math.floor(t));
  if (follow && S.pos[frame].length) target = [S.pos[frame][0][0], S.pos[frame][0][1], start[2]];
  const project = camera();
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  fill(groundTiles(project));
  fill(polygons(frame, project));
  document.getElementById("t").value = frame;
  document.getElementById("label").textContent = `step ${frame + 1} / ${T}  (${(frame * S.dt).toFixed(2)} s)`;
}
function tick(now) {
  if (playing && last !== null) t = (t + (now - last) / 1000 / S.dt * speed) % T;
  last = now;
  draw();
  requestAnimationFrame(tick);
}
function resize() { canvas.width = canvas.clientWidth; canvas.height = canvas.clientHeight; }

// ---- controls
const slider = document.getElementById("t");
slider.max = T - 1;
const play = document.getElementById("play");
slider.oninput = () => { t = Number(slider.value); playing = false; play.textContent = "play"; };
play.onclick = () => { playing = !playing; play.textContent = playing ? "pause" : "play"; };
document.getElementById("speed").onchange = e => { speed = Number(e.target.value); };
document.getElementById("follow").onchange = e => { follow = e.target.checked; };
let drag = null;
canvas.onmousedown = e => { drag = [e.clientX, e.clientY]; };
window.onmouseup = () => { drag = null; };
window.onmousemove = e => {
  if (!drag) return;
  cam.az -= (e.clientX - drag[0]) * 0.01;
  cam.el = Math.max(-1.4, Math.min(1.4, cam.el + (e.clientY - drag[1]) * 0.01));
  drag = [e.clientX, e.clientY];
};
canvas.onwheel = e => { e.preventDefault(); cam.dist = Math.max(0.3, cam.dist * Math.exp(e.deltaY * 0.001)); };
window.onresize = resize;
resize();
requestAnimationFrame(tick);
</script>
</body>
</html>
"""
