"""benchmarks/results_docs.py: the results pages come from the stored files, and only from them.

Runs on the stored files of this checkout (``RESULTS_DOCS_ROOT`` points it at another tree).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from helpers import load_script

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("RESULTS_DOCS_ROOT", REPO))


rd = load_script("benchmarks/results_docs.py", "results_docs")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every generated file, written once into a temporary folder: ``(out, files)``."""
    out = tmp_path_factory.mktemp("site") / "results"
    files, _ = rd.build(ROOT, out, tmp_path_factory.mktemp("readme") / "README.md")
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return out, files


def _table(text: str, first_header: str) -> list[list[str]]:
    """Rows (cells stripped) of the first Markdown table whose first header cell is ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _close(cell: str, value: float) -> None:
    """The number shown in ``cell`` is ``value`` rounded to the digits shown."""
    shown = re.search(r"-?[\d,]+(?:\.\d+)?", cell).group(0).replace(",", "")
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    assert abs(float(shown) - value) <= 0.5 * 10 ** -decimals + 1e-9, (cell, value)


def test_every_page_and_figure_exists(generated):
    out, files = generated
    for name in [*rd.PAGES, "index.md"]:
        assert (out / name).is_file(), name
    for page in out.glob("*.md"):
        text = page.read_text()
        assert "nan" not in text.lower().split(), page
        for link in re.findall(r"\]\(([^)#]+)\)", text):
            if not link.startswith("http"):
                assert (out / link).is_file(), (page.name, link)
    assert len(list((out / "figures").glob("*.png"))) >= 10


def test_demo_table_equals_the_json(generated):
    out, _ = generated
    rows = {r[0]: r for r in _table((out / "demo.md").read_text(), "algorithm")}
    for algo in ("ppo", "trpo"):
        summary = json.loads((ROOT / f"docs/demo-{algo}-summary.json").read_text())
        row = rows[algo.upper()]
        _close(row[1], summary["final_return"]["median"])
        _close(row[2], summary["final_return"]["iqm"])
        _close(row[4], summary["final_return"]["min"])
        per_seed = summary["final_return_per_seed"]
        assert row[5] == f"{sum(r is not None and r >= 475 for r in per_seed)} / {summary['num_seeds']}"
        covered = sum(r is not None for r in per_seed)
        assert row[6] in (f"{covered} / {summary['num_seeds']}", "not recorded")
        _close(row[8], summary["env_steps_per_second"])
        _close(row[9], summary["compile_seconds"])
        assert summary["command"] in (out / "demo.md").read_text()


def test_other_tables_equal_the_json(generated):
    out, _ = generated
    rlhf = json.loads((ROOT / "benchmarks/results/rlhf/rlhf.json").read_text())["throughput"]
    for row in _table((out / "rlhf.md").read_text().split("## Tokens/s")[1], "algo"):
        _close(row[1], rlhf[row[0].lower()]["generation"]["tokens_per_second"])
        _close(row[3], rlhf[row[0].lower()]["update"]["tokens_per_second"])
    stats = json.loads((ROOT / "benchmarks/results/stats.json").read_text())
    text = (out / "sample-efficiency.md").read_text().split("## Final normalised score")[1]
    for row in _table(text, "variant"):
        for env, cell in zip(stats["envs"], row[1:]):
            _close(cell, stats["per_env_final"][env]["points"][row[0]]["iqm"])
    seeds = json.loads((ROOT / "benchmarks/results/seeds/throughput.json").read_text())
    shown = [r[4] for r in _table((out / "throughput.md").read_text().split("## Seeds sweep")[1], "program")]
    for cell, point in zip(shown, seeds["ours"]):
        _close(cell, point["env_steps_per_second"])


def test_readme_block_rewrite_is_idempotent_and_local(tmp_path, capsys):
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro 1.0\n\n", "\n\n## Next\n\n12,345 stays\n"
    readme.write_text(f"{before}{rd.START}\nold table\n{rd.END}{after}")
    out = tmp_path / "docs" / "results"
    args = ["--root", str(ROOT), "--out", str(out), "--readme", str(readme)]
    assert rd.main(args) == 0
    first = readme.read_text()
    assert first.startswith(before + rd.START + "\n") and first.endswith(rd.END + after)
    assert "old table" not in first and "| PPO |" in first and "(docs/results/index.md)" in first
    assert rd.main(args) == 0
    assert readme.read_text() == first
    assert rd.main([*args, "--check-pages"]) == 0
    (out / "demo.md").write_text("edited by hand\n")
    assert rd.main([*args, "--check-pages"]) == 1
    assert "demo.md" in capsys.readouterr().err


def test_named_readme_blocks_hold_the_rlhf_and_processes_figures(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("".join(f"## {name}\n{rd.markers(name)[0]}\n{rd.markers(name)[1]}\n"
                              for name in ("rlhf", "processes")))
    assert rd.main(["--root", str(ROOT), "--out", str(tmp_path / "results"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    rlhf = json.loads((ROOT / rd.RLHF_JSON).read_text())
    ppo = _table(text.split("## rlhf")[1], "algo")[0]
    assert ppo[0] == "PPO"
    _close(ppo[3].split("(")[0], rlhf["pipeline"]["ppo"]["rm_accuracy"])
    processes = json.loads((ROOT / rd.PROCESSES_JSON).read_text())
    rows = _table(text.split("## processes")[1], "seeds")
    assert [r[1] for r in rows] == [r["layout"] for r in processes["summary"]]
    for row, summary in zip(rows, processes["summary"]):
        _close(row[2], summary["env_steps_per_second_median"])
    assert "python benchmarks/throughput.py --processes 2" in text


def test_readme_without_markers_is_left_alone(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# No markers\n")
    assert rd.main(["--root", str(ROOT), "--out", str(tmp_path / "out"), "--readme", str(readme)]) == 0
    assert readme.read_text() == "# No markers\n"
    assert "markers" in capsys.readouterr().err


def test_missing_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "docs").symlink_to(ROOT / "docs")
    for entry in (ROOT / "benchmarks" / "results").iterdir():
        if entry.name != "processes.json":
            (root / "benchmarks" / "results" / entry.name).symlink_to(entry)
    out = tmp_path / "out"
    assert rd.main(["--root", str(root), "--out", str(out), "--readme", str(tmp_path / "README.md")]) == 2
    err = capsys.readouterr().err
    assert "benchmarks/results/processes.json" in err and "missing" in err
    assert not out.exists()


def test_suites_tables_equal_the_json(generated):
    out, _ = generated
    text = (out / "suites.md").read_text()
    learning = json.loads((ROOT / "benchmarks/results/suites/learning.json").read_text())["results"]
    rows = _table(text.split("## Learning")[1], "suite")
    assert len(rows) == len(learning)
    for row, r in zip(rows, learning):
        assert (row[0], row[2]) == (r["suite"], r["algo"].upper())
        _close(row[5], r["final_return_iqm"])
        _close(row[7], r["random_return_mean"])
        assert row[8] == f"{r['seeds_above_random']}/{r['seeds']}"
    throughput = json.loads((ROOT / "benchmarks/results/suites/throughput.json").read_text())["results"]
    for row, r in zip(_table(text.split("## Throughput")[1], "suite"), throughput):
        _close(row[5], r["env_steps_per_second"])
        _close(row[6], r["env_only_steps_per_second"])
