"""Which stored results predate a change to the code they measure.

Every stored result records the code it ran (:func:`purejaxrl_ppo.runs.provenance.code_version`: the
commit, plus the git blob of every file that differed from it, so a result measured on an uncommitted
tree names exactly what it measured). :data:`MEASUREMENTS` lists each stored result with the repository
paths whose code it measures and the command that regenerates it. A result is *stale* when a file under
those paths differs today from what was measured, where a Python file counts as changed only if its code
changed (its syntax tree without docstrings; comments never reach it): a reworded docstring leaves every
result valid, a changed default does not. ``python benchmarks/results_docs.py --check`` fails on a stale
result, naming the files that changed and the command to rerun.

Results measured before the code version was recorded carry ``"code": {"commit": ..., "inferred": ...}``:
the commit that stored the file, read from git history (the code measured was committed with its result).
Comparisons of two fixed source trees (A/B checks, ``benchmarks/ab_trees.py`` and ``equality.py`` logs)
measure those trees, not today's code, and are never stale.
"""

from __future__ import annotations

import ast
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PKG = "purejaxrl_ppo"
#: What every control-task result runs: the device side, the programs, the run driver, the statistics.
CONTROL = (f"{PKG}/core", f"{PKG}/launch", f"{PKG}/runs", f"{PKG}/driver", f"{PKG}/analysis/stats.py",
           f"{PKG}/platform.py", f"{PKG}/__init__.py")
#: RLHF's own files, which no control-task result runs.
RLHF_ONLY = (f"{PKG}/core/rlhf", f"{PKG}/launch/rlhf.py", f"{PKG}/driver/rlhf.py", f"{PKG}/cli/rlhf.py",
             f"{PKG}/analysis/rlhf_plots.py")
THROUGHPUT = (*CONTROL, "benchmarks/throughput.py", "benchmarks/peers")
#: What a benchmark that calls ``train_seeds`` or ``make_train`` itself runs: the device side and the compiled
#: programs, not the run driver (``driver/``, ``runs/``, and launch's processes, distributed, chunked, sweep and
#: RLHF modules), which only runs started from the CLI go through.
PROGRAM = (f"{PKG}/core", f"{PKG}/launch/seeds.py", f"{PKG}/launch/programs.py", f"{PKG}/launch/layout.py",
           f"{PKG}/analysis/stats.py", f"{PKG}/platform.py", f"{PKG}/__init__.py")
#: What the environment-suite results run: the programs (the suites' adapters are in core/envs), the IQM and
#: bootstrap CIs (analysis/study.py), the script.
SUITES = (*PROGRAM, f"{PKG}/analysis/study.py", "benchmarks/suites.py", "benchmarks/random_policy_scores.py")
#: The shared PPO/TRPO pieces RLHF's programs call (the loss pieces, minibatch epochs, the natural-gradient step);
#: the control tasks' PPO and TRPO updates (core/algos/ppo, core/algos/trpo) never run in them.
RLHF_ALGOS = tuple(f"{PKG}/core/algos/{name}.py" for name in ("__init__", "base", "losses", "natural_gradient"))
#: What an RLHF result runs: the language-model pieces, the shared PPO/TRPO pieces, the run driver.
RLHF = (f"{PKG}/core/rlhf", *RLHF_ALGOS, f"{PKG}/core/advantages.py", f"{PKG}/launch", f"{PKG}/runs",
        f"{PKG}/driver", f"{PKG}/analysis/rlhf_plots.py", f"{PKG}/platform.py")


@dataclass(frozen=True)
class Measurement:
    """A stored result: its files (the first holds the code version), the code it measures, its command."""

    name: str
    files: tuple[str, ...]
    measures: tuple[str, ...]
    rerun: str
    excludes: tuple[str, ...] = RLHF_ONLY


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement("demo", ("docs/demo-ppo-summary.json", "docs/demo-trpo-summary.json", "docs/cartpole_ppo_vs_trpo.png"),
                (*CONTROL, f"{PKG}/cli", f"{PKG}/analysis/plots.py"), "make demo-results"),
    Measurement("sample-efficiency", ("benchmarks/results/run_info.json", "benchmarks/results/stats.json"),
                (*CONTROL, f"{PKG}/analysis/study.py", "benchmarks/sample_efficiency.py"), "make study"),
    *(Measurement(f"throughput{'-' + d if d else ''}", (f"benchmarks/results/{d + '/' if d else ''}throughput.json",),
                  THROUGHPUT, "the command recorded in the file")
      for d in ("", "rejax64", "rejax64_short", "seeds", "envs", "sb3", "cpu_devices", "vs_purejaxrl")),
    Measurement("purejaxrl", ("benchmarks/results/vs_purejaxrl/purejaxrl.json",), THROUGHPUT,
                "the vs_purejaxrl command (benchmarks/results/vs_purejaxrl/throughput.json)"),
    Measurement("brax-ppo", tuple(f"benchmarks/results/vs_purejaxrl/brax_ppo{s}.json" for s in ("", "_1seed", "_4seed")),
                THROUGHPUT, "the vs_purejaxrl command (benchmarks/results/vs_purejaxrl/throughput.json)"),
    Measurement("brax-backends", ("benchmarks/results/brax_backends.json",), (*CONTROL, "benchmarks/brax_backends.py"),
                "the command recorded in the file"),
    Measurement("brax-hopper", ("benchmarks/results/brax_hopper.json",),
                (*CONTROL, "benchmarks/brax_locomotion.py"), "the command recorded in the file"),
    Measurement("memory-learning", ("benchmarks/results/memory/learning.json", "benchmarks/results/memory/curves.npz"),
                (*CONTROL, "benchmarks/memory.py"), "python benchmarks/memory.py learning --seeds 16 "
                "--out benchmarks/results/memory"),
    Measurement("memory-throughput", ("benchmarks/results/memory/throughput.json",), (*CONTROL, "benchmarks/memory.py"),
                "python benchmarks/memory.py throughput --seeds 1 16 64 --updates 2 --out benchmarks/results/memory"),
    Measurement("suites-learning", ("benchmarks/results/suites/learning.json", "benchmarks/results/suites/curves.npz"),
                SUITES, "python benchmarks/suites.py learning --seeds 8 --out benchmarks/results/suites"),
    Measurement("suites-throughput", ("benchmarks/results/suites/throughput.json",), SUITES,
                "the command recorded in the file"),
    *(Measurement(f"suites-{name}", (f"benchmarks/results/suites/{name}.json",),
                  (*PROGRAM, f"{PKG}/analysis/study.py", f"benchmarks/peers/{name.split('_')[0]}_ppo.py"),
                  "the command recorded in the file")
      for name in ("craftax_ppo", "craftax_ppo_auto_resets", "xland_ppo", "navix_ppo", "navix_ppo_learning")),
    Measurement("suites-popgym-arcade-cpu", ("benchmarks/results/suites/popgym_arcade_cpu.json",),
                (*PROGRAM, "benchmarks/suites.py", "benchmarks/popgym_arcade_cpu.py"), "the command recorded in the file"),
    Measurement("sb3-zoo", ("benchmarks/results/sb3_zoo/sb3_zoo.json",),
                (*PROGRAM, f"{PKG}/analysis/study.py", "benchmarks/sb3_zoo.py"),
                "python benchmarks/sb3_zoo.py --out benchmarks/results/sb3_zoo"),
    Measurement("ppo-table1", ("benchmarks/results/ppo_table1/ppo_table1.json",),
                (*PROGRAM, f"{PKG}/launch/sweep.py", f"{PKG}/analysis/study.py", "benchmarks/ppo_table1.py",
                 "benchmarks/sample_efficiency.py", "benchmarks/random_policy_scores.py"),
                "the command recorded in the file"),
    Measurement("rlhf", ("benchmarks/results/rlhf/rlhf.json",), (*RLHF, "benchmarks/rlhf.py"),
                "the command recorded in the file", excludes=()),
    Measurement("rlhf-overoptimisation", ("benchmarks/results/rlhf/overoptimisation.json",),
                (f"{PKG}/core/rlhf", *RLHF_ALGOS, f"{PKG}/core/advantages.py", f"{PKG}/launch/rlhf.py",
                 f"{PKG}/launch/layout.py", f"{PKG}/analysis/overoptimisation.py", f"{PKG}/analysis/rlhf_plots.py",
                 f"{PKG}/platform.py", "benchmarks/rlhf_overoptimisation.py"),
                "the command recorded in the file", excludes=()),
    Measurement("processes", ("benchmarks/results/processes.json",), (*CONTROL, f"{PKG}/cli", "benchmarks/processes.py"),
                "python benchmarks/throughput.py --processes 2"),
    # The notebooks' stored outputs (what the docs show): their stamp holds the code version.
    Measurement("notebook-quickstart", ("notebooks/quickstart.ipynb",), (*CONTROL, f"{PKG}/analysis/plots.py"),
                "python notebooks/execute.py notebooks/quickstart.ipynb"),
    Measurement("notebook-trpo_vs_ppo", ("notebooks/trpo_vs_ppo.ipynb",), (*CONTROL, f"{PKG}/analysis/study.py"),
                "python notebooks/execute.py notebooks/trpo_vs_ppo.ipynb"),
    Measurement("notebook-rlhf", ("notebooks/rlhf.ipynb",), RLHF, "python notebooks/execute.py notebooks/rlhf.ipynb",
                excludes=()),
)


def code_version() -> dict[str, Any]:
    """:func:`purejaxrl_ppo.runs.provenance.code_version` of this checkout, for a benchmark script that must not
    import the package (and start jax) in its own process: the module is loaded alone (it needs no jax)."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("_pjp_provenance", root / PKG / "runs" / "provenance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.code_version(root)


def _git(root: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(root), *args], input=data, capture_output=True, check=True,
                          timeout=120).stdout


def recorded_code(doc: Any) -> dict[str, Any] | None:
    """The ``code`` a result file records: under its ``machine`` (or its run's), at the top level, or in a
    notebook's ``metadata.purejaxrl_ppo`` stamp (``notebooks/execute.py``); None if absent."""
    if not isinstance(doc, dict):
        return None
    notebook = (doc.get("metadata") or {}).get("purejaxrl_ppo") if isinstance(doc.get("metadata"), dict) else None
    run = doc.get("run") if isinstance(doc.get("run"), dict) else {}
    # the machine's first: a script that updates part of an older file rewrites its machine (and code), while a
    # top-level "code" may be the inferred one of the file's first version
    for holder in (doc.get("machine"), run.get("machine"), doc, run, notebook):
        if isinstance(holder, dict) and isinstance(holder.get("code"), dict) and holder["code"].get("commit"):
            return holder["code"]
    return None


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def same_code(old: bytes, new: bytes, path: str) -> bool:
    """True if ``old`` and ``new`` are the same code: equal bytes, or Python files whose syntax trees
    without docstrings are equal (comments and layout never reach the tree)."""
    if old == new:
        return True
    if not path.endswith(".py"):
        return False
    try:
        trees = [ast.dump(_strip_docstrings(ast.parse(text))) for text in (old, new)]
    except SyntaxError:
        return False
    return trees[0] == trees[1]


def _blobs(root: Path, blobs: list[str]) -> dict[str, bytes | None]:
    """Contents of git blobs (None for those the repository does not have), in one ``cat-file --batch``."""
    if not blobs:
        return {}
    out = _git(root, "cat-file", "--batch", data="".join(b + "\n" for b in blobs).encode())
    contents: dict[str, bytes | None] = {}
    pos = 0
    for blob in blobs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 2 and header[1] == b"missing":
            contents[blob] = None
            continue
        size = int(header[2])
        contents[blob] = out[pos:pos + size]
        pos += size + 1
    return contents


def changed_files(root: Path, code: dict[str, Any], measures: tuple[str, ...],
                  excludes: tuple[str, ...] = ()) -> list[str]:
    """Files under ``measures`` (not ``excludes``) whose code differs today from the recorded ``code``.

    ``code``: ``{"commit", "modified": {path: blob or None}}`` as :func:`~purejaxrl_ppo.runs.provenance.code_version`
    records it. Compares the working tree (uncommitted changes included). Raises ``LookupError`` if the
    recorded commit is not in this repository (a shallow clone).
    """
    commit, modified = code["commit"], dict(code.get("modified") or {})
    try:
        listing = _git(root, "ls-tree", "-r", "-z", commit, "--", *measures).decode()
    except subprocess.CalledProcessError:
        raise LookupError(f"commit {commit[:12]} is not in this repository (a shallow clone?)") from None
    then: dict[str, str | None] = {}
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        then[path] = meta.split()[2]
    then.update({p: b for p, b in modified.items() if _under(p, measures)})
    now_files = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *measures).decode()
    now_paths = sorted(p for p in set(filter(None, now_files.split("\0"))) if (root / p).is_file())
    now_blobs = _git(root, "hash-object", "--", *now_paths).decode().split() if now_paths else []
    now = dict(zip(now_paths, now_blobs))
    paths = sorted(p for p in set(then) | set(now) if not _under(p, excludes) and then.get(p) != now.get(p))
    contents = _blobs(root, sorted({then[p] for p in paths if then.get(p)}))
    changed = []
    for p in paths:
        old = contents.get(then[p]) if then.get(p) else None
        new = (root / p).read_bytes() if p in now else None
        if old is None or new is None or not same_code(old, new, p):
            changed.append(p)
    return changed


def stale_results(root: Path, measurements: tuple[Measurement, ...] = MEASUREMENTS) -> list[str]:
    """One line per stale result (or result whose code version is unknown); empty if every result is fresh."""
    problems = []
    for m in measurements:
        for rel in m.files:  # every JSON file is checked (figures and arrays come with the JSON beside them)
            problem = _file_problem(root, m, rel)
            if problem:
                problems.append(f"{m.name}: {problem}; rerun: {m.rerun}")
                break
    return problems


def _file_problem(root: Path, m: Measurement, rel: str) -> str | None:
    """Why the stored file ``rel`` of ``m`` is not a fresh measurement, or None."""
    path = root / rel
    if not path.is_file():
        return f"{rel} is missing"
    if path.suffix not in (".json", ".ipynb"):
        return None
    code = recorded_code(json.loads(path.read_text()))
    if code is None:
        return f"{rel} records no code version"
    try:
        changed = changed_files(root, code, m.measures, m.excludes)
    except LookupError as err:
        return f"cannot tell: {err}"
    if not changed:
        return None
    shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
    return f"{rel} was measured at {code['commit'][:12]}, since then the code of {shown} changed"


def describe(code: dict[str, Any] | None) -> str:
    """``commit 1a2b3c4d5e6f (+2 uncommitted files)`` for a results page."""
    if not code:
        return "not recorded"
    extra = len(code.get("modified") or {})
    text = f"commit {code['commit'][:12]}" + (f" (+{extra} uncommitted file{'s' * (extra != 1)})" if extra else "")
    if code.get("inferred"):
        text += f"; {code['inferred']}"
    return text
