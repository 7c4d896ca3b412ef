"""The run-directory tables of the docs (purejaxrl_ppo.runs.contents) name exactly what runs write: every
entry ``--overwrite`` removes (rundir.OWNED / RLHF_OWNED) and everything a real run leaves, nothing else (an rlhf
run's listing: tests/cli/test_rlhf_cli.py, on the run it trains anyway)."""

from helpers import check_listing, described_names
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs.contents import RLHF_RUN_FILES, TRAIN_RUN_FILES, markdown_table


def test_the_tables_name_what_overwrite_removes():
    assert described_names(TRAIN_RUN_FILES) == set(rundir.OWNED) | {rundir.LOCK_FILE}
    assert described_names(RLHF_RUN_FILES) == set(rundir.RLHF_OWNED) | {rundir.LOCK_FILE}
    table = markdown_table(TRAIN_RUN_FILES).splitlines()
    assert table[:2] == ["| file | contents |", "|---|---|"] and len(table) == 2 + len(TRAIN_RUN_FILES)


def test_a_train_run_holds_only_described_entries(finished_run):
    check_listing(finished_run, TRAIN_RUN_FILES)
    assert {"config.yaml", "run.json", "summary.json", "metrics.npz", "complete.json"} <= {
        p.name for p in finished_run.iterdir()}
