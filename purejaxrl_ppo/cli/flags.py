"""Command-line flags generated from the fields' metadata (:func:`purejaxrl_ppo.core.config.field`).

Every field of every registered algorithm's config and of
:class:`~purejaxrl_ppo.runs.options.RunOptions` becomes one flag (``num_envs`` ->
``--num-envs``; booleans get ``--x/--no-x``; ``hidden_sizes`` takes several ints). The
help is the field's help plus its default(s), bounds and choices. Flags default to
``None`` (not given), so a run file's values and the Brax presets stay underneath them.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

from purejaxrl_ppo.core.algos import config_classes
from purejaxrl_ppo.core.config import field_choices, field_kind
from purejaxrl_ppo.runs.options import RunOptions

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`]*)`")  # :class:`x`, :py:func:`~a.b.c`
_LITERAL = re.compile(r"``([^`]*)``")


def plain(text: str) -> str:
    """``text`` without Sphinx markup, for ``--help``: inline literals lose their double
    backticks, roles their role (``:class:`x``` -> x, ``:func:`~a.b.c``` -> c).

    The fields' metadata keeps its markup for the generated docs; only the terminal sees it stripped.
    """

    def role(match: re.Match) -> str:
        tilde, target = match.groups()
        return target.rsplit(".", 1)[-1] if tilde else target

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _default_note(name: str) -> str:
    """``[default: x]``, ``[PPO: x, TRPO: y]`` or ``[TRPO only, default: y]`` for a config field."""
    configs = config_classes()
    shown = {algo: _show(f.default) for algo, cls in configs.items() for f in dataclasses.fields(cls) if f.name == name}
    if len(shown) == 1 and len(configs) > 1:
        (algo, value), = shown.items()
        return f"[{algo.upper()} only, default: {value}]"
    if len(set(shown.values())) == 1:
        return f"[default: {next(iter(shown.values()))}]"
    return "[" + ", ".join(f"{algo.upper()}: {value}" for algo, value in shown.items()) + "]"


def _help(f: dataclasses.Field, note: str) -> str:
    extra = []
    if f.metadata.get("bounds") is not None:
        extra.append(f"in {f.metadata['bounds']}")
    choices = field_choices(f)
    if choices is not None and not any(c in f.metadata.get("help", "") for c in choices):
        extra.append("one of " + ", ".join(choices))
    return plain(" ".join([f.metadata.get("help", ""), *(f"({e})" for e in extra), note]))


def _add(parser: argparse.ArgumentParser, f: dataclasses.Field, names: list[str], help_text: str) -> None:
    kind = field_kind(f)
    if kind == "bool":
        parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif kind == "tuple":
        parser.add_argument(*names, dest=f.name, type=int, nargs="+", default=None, help=help_text)
    else:
        caster = {"int": int, "float": float, "str": str}[kind]
        parser.add_argument(*names, dest=f.name, type=caster, default=None, help=help_text)


def config_fields() -> dict[str, dataclasses.Field]:
    """Every config field of every registered algorithm, first declaration wins (name -> field)."""
    fields: dict[str, dataclasses.Field] = {}
    for cls in config_classes().values():
        for f in dataclasses.fields(cls):
            fields.setdefault(f.name, f)
    return fields


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of any algorithm's config; defaults come from the chosen class."""
    for name, f in config_fields().items():
        flag = "--" + name.replace("_", "-")
        _add(parser, f, [flag, "--env"] if name == "env_name" else [flag], _help(f, _default_note(name)))


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of the dataclass ``cls`` of :func:`~purejaxrl_ppo.core.config.field` s (``num_envs`` ->
    ``--num-envs``, help with default, bounds and choices), except the fields named in ``skip``; default ``None``."""
    for f in dataclasses.fields(cls):
        if f.name not in skip:
            _add(parser, f, ["--" + f.name.replace("_", "-")], _help(f, f"[default: {_show(f.default)}]"))


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`RunOptions` field (seeds, chunking, checkpoints, logging)."""
    add_dataclass_flags(parser, RunOptions)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """Config and run-option values given as flags (``None`` = not given), plus ``algo`` if given."""
    names = set(config_fields()) | {f.name for f in dataclasses.fields(RunOptions)}
    given = {name: getattr(args, name) for name in sorted(names) if getattr(args, name, None) is not None}
    if args.algo is not None:
        given["algo"] = args.algo
    return given
