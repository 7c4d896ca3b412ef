"""benchmarks/freshness.py: a stored result is stale exactly when the code it measures changed since.

Each case builds a small git repository in a temporary folder, records a result with the code version
:func:`purejaxrl_ppo.runs.provenance.code_version` gives, changes the code, and asks for the stale results.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import load_script

from purejaxrl_ppo.runs.provenance import code_version

REPO = Path(__file__).resolve().parent.parent


freshness = load_script("benchmarks/freshness.py", "freshness")
LOOP = '''"""The loop."""\n\n\ndef rate(x):\n    """Docstring."""\n    return 2 * x  # doubled\n'''
RESULT = "benchmarks/results/r.json"
MEASURED = (freshness.Measurement("r", (RESULT,), ("purejaxrl_ppo/core",), "python bench.py", excludes=()),)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "purejaxrl_ppo" / "core").mkdir(parents=True)
    (tmp_path / "purejaxrl_ppo" / "core" / "loop.py").write_text(LOOP)
    (tmp_path / "purejaxrl_ppo" / "cli.py").write_text("x = 1\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "code")
    return tmp_path


def record(root: Path) -> None:
    """Store a result naming the code of this moment, and commit it."""
    code_version.cache_clear()
    path = root / RESULT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"value": 1.0, "machine": {"code": code_version(root)}}))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "result")


def stale(root: Path) -> list[str]:
    return freshness.stale_results(root, MEASURED)


def edit(root: Path, old: str, new: str) -> None:
    path = root / "purejaxrl_ppo" / "core" / "loop.py"
    path.write_text(path.read_text().replace(old, new))


def test_a_result_is_fresh_until_its_code_changes(repo):
    record(repo)
    assert stale(repo) == []
    edit(repo, '"""Docstring."""', '"""A reworded docstring."""')
    edit(repo, "# doubled", "# twice x")
    (repo / "purejaxrl_ppo" / "cli.py").write_text("x = 2\n")  # outside what the result measures
    assert stale(repo) == []
    edit(repo, "2 * x", "3 * x")
    [line] = stale(repo)
    assert line.startswith(f"r: {RESULT} was measured at ") and "purejaxrl_ppo/core/loop.py" in line
    assert line.endswith("rerun: python bench.py")


def test_committing_the_measured_tree_keeps_the_result_fresh(repo):
    """Measured on an uncommitted change, then committed: the recorded blobs name that very code."""
    edit(repo, "2 * x", "4 * x")
    record(repo)  # the result's commit is the one before; the change is recorded as a modified blob
    data = json.loads((repo / RESULT).read_text())
    assert set(data["machine"]["code"]["modified"]) == {"purejaxrl_ppo/core/loop.py"}
    assert stale(repo) == []
    edit(repo, "4 * x", "2 * x")  # back to the commit's code: not what was measured
    assert "loop.py" in stale(repo)[0]


def test_new_and_deleted_files_make_a_result_stale(repo):
    record(repo)
    (repo / "purejaxrl_ppo" / "core" / "extra.py").write_text("y = 0\n")
    assert "purejaxrl_ppo/core/extra.py" in stale(repo)[0]
    (repo / "purejaxrl_ppo" / "core" / "extra.py").unlink()
    assert stale(repo) == []
    (repo / "purejaxrl_ppo" / "core" / "loop.py").unlink()
    assert "purejaxrl_ppo/core/loop.py" in stale(repo)[0]


def test_unknown_code_is_never_called_fresh(repo):
    path = repo / RESULT
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"value": 1.0}))
    assert stale(repo) == ["r: benchmarks/results/r.json records no code version; rerun: python bench.py"]
    path.write_text(json.dumps({"code": {"commit": "0" * 40}}))
    assert "cannot tell" in stale(repo)[0]
    path.unlink()
    assert "is missing" in stale(repo)[0]


def test_every_json_file_of_a_result_is_checked(repo):
    """A result stored in two files (e.g. the demo's two summaries): the second one's code counts too."""
    record(repo)
    second = repo / "benchmarks" / "results" / "r2.json"
    second.write_text(json.dumps({"value": 2.0}))  # written by hand, or by code that records nothing
    figure = repo / "benchmarks" / "results" / "r.png"
    figure.write_bytes(b"png")
    both = (freshness.Measurement("r", (RESULT, "benchmarks/results/r.png", "benchmarks/results/r2.json"),
                                  ("purejaxrl_ppo/core",), "python bench.py", excludes=()),)
    assert freshness.stale_results(repo, both) == [
        "r: benchmarks/results/r2.json records no code version; rerun: python bench.py"]
    second.write_text((repo / RESULT).read_text())
    assert freshness.stale_results(repo, both) == []


def test_same_code_ignores_docstrings_and_comments_only():
    assert freshness.same_code(b"def f():\n    'a'\n    return 1\n", b"def f():\n    'b'  # c\n    return 1\n", "m.py")
    assert not freshness.same_code(b"def f():\n    return 1\n", b"def f():\n    return 2\n", "m.py")
    assert not freshness.same_code(b"a: 1\n", b"a: 2\n", "Makefile")


def test_every_registered_result_exists_and_names_its_code():
    """The registry matches the stored files, and each records (or was given) the code it measured."""
    for m in freshness.MEASUREMENTS:
        for rel in m.files:
            assert (REPO / rel).is_file(), rel
        doc = json.loads((REPO / m.files[0]).read_text())
        assert freshness.recorded_code(doc) is not None, m.name
