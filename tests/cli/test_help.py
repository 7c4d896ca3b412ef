"""``--help`` a new user can read: the top level names every subcommand, ``train`` and ``rlhf`` list their
flags in sections (each field in exactly one), fields with choices show them, and the ``cli`` package's
docstring names every command and module."""

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

import purejaxrl_ppo.cli as cli
from purejaxrl_ppo.cli import build_parser, flags, main
from purejaxrl_ppo.cli.rlhf import RLHF_SECTIONS
from purejaxrl_ppo.core.algos import config_classes
from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.runs.options import RunOptions


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _subcommands() -> list[str]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def _sections(text: str) -> dict[str, list[str]]:
    """``--help`` text -> section title -> the long flags listed under it (first name of each)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            sections[current] = []
        elif current is not None and re.match(r"^  --", line):
            sections[current].append(line.split()[0].rstrip(","))
    return sections


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_top_level_help_names_every_subcommand(capsys):
    commands = _subcommands()
    assert {"train", "render", "compare", "rlhf", "launch"} <= set(commands)
    text = _help(capsys)
    description = text.split("positional arguments:")[0]
    for command in commands:  # in the description itself, not only argparse's list of choices
        assert re.search(rf"\b{command}\b", description), (command, description)


def test_every_train_field_is_in_exactly_one_section():
    sections = flags.train_sections()
    listed = [name for names in sections.values() for name in names]
    assert len(listed) == len(set(listed)), sorted({n for n in listed if listed.count(n) > 1})
    fields = set(flags.config_fields()) | {f.name for f in dataclasses.fields(RunOptions)}
    assert set(listed) == fields, {"in no section": sorted(fields - set(listed)),
                                   "not a field": sorted(set(listed) - fields)}
    for title in flags.TRAIN_SECTIONS:  # the one list places shared fields and run options only
        for name in flags.TRAIN_SECTIONS[title]:
            assert name in {f.name for f in dataclasses.fields(BaseConfig)} | {f.name for f in dataclasses.fields(RunOptions)}, name
    for algo in config_classes():  # an algorithm's own fields get its own section, generated
        assert f"{algo.upper()} only" in sections


def test_train_help_lists_flags_under_their_sections(capsys):
    shown = _sections(_help(capsys, "train"))
    for title, names in flags.train_sections().items():
        assert shown.get(title) == [_flag(n) for n in names], title
    assert flags.UNSORTED_SECTION not in shown
    assert shown["environment"][0] == "--env-name" and "--env ENV_NAME" in _help(capsys, "train")
    assert "several processes (jax.distributed; see also the launch command)" in shown


def test_rlhf_help_sections_and_algo_choices(capsys):
    listed = [name for names in RLHF_SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(RLHFConfig))
    text = _help(capsys, "rlhf")
    shown = _sections(text)
    for title, names in RLHF_SECTIONS.items():
        assert shown.get(title) == [_flag(n) for n in names], title
    assert "--algo {ppo,trpo}" in text
    assert "--policy {attention,gru,mlp}" in _help(capsys, "train")


def test_a_bad_choice_is_refused_by_the_parser_naming_the_choices(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["rlhf", "--algo", "sac", "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sac' (choose from ppo, trpo)" in capsys.readouterr().err.replace("'ppo'", "ppo").replace(
        "'trpo'", "trpo")
    assert not (tmp_path / "r").exists()


def test_cli_docstring_names_every_command_and_module():
    doc = cli.__doc__
    for command in _subcommands():
        assert f"``{command}``" in doc, f"purejaxrl_ppo/cli/__init__.py's docstring does not name `{command}`"
    for module in sorted(Path(cli.__file__).parent.glob("*.py")):
        if module.name != "__init__.py":
            assert f"``{module.name}``" in doc, f"purejaxrl_ppo/cli/__init__.py's docstring does not name {module.name}"
