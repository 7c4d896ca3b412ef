"""Command-line flags generated from the fields' metadata (:func:`purejaxrl_ppo.core.config.field`).

Every field of every registered algorithm's config and of
:class:`~purejaxrl_ppo.runs.options.RunOptions` becomes one flag (``num_envs`` ->
``--num-envs``; booleans get ``--x/--no-x``; ``hidden_sizes`` takes several ints; a field
with choices lists them as ``{a,b}``). The help is the field's help plus its default(s)
and bounds. Flags default to ``None`` (not given), so a run file's values and the Brax
presets stay underneath them.

``--help`` shows the flags in sections. :data:`TRAIN_SECTIONS` is the one list that places
the shared fields and the run options; a field that only some algorithms declare goes
under a section of its own named after them (``PPO only``), so a new algorithm needs no
entry here. ``tests/cli/test_help.py`` fails when a field is in no section or in two.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import weakref
from typing import Any, Mapping, Sequence

from purejaxrl_ppo.core.algos import config_classes
from purejaxrl_ppo.core.config import BaseConfig, field_choices, field_kind
from purejaxrl_ppo.runs.options import RunOptions

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`]*)`")  # :class:`x`, :py:func:`~a.b.c`
_LITERAL = re.compile(r"``([^`]*)``")

#: The section after which each algorithm's own section follows.
ALGORITHM_SECTION = "algorithm (every --algo)"
#: Where a field that no section names goes (``tests/cli/test_help.py`` keeps it empty).
UNSORTED_SECTION = "other"
#: The sections of ``train --help``, in order: title -> the shared config fields
#: (:class:`~purejaxrl_ppo.core.config.BaseConfig`) and run options
#: (:class:`~purejaxrl_ppo.runs.options.RunOptions`) shown under it. The fields only some
#: algorithms declare get a section per algorithm right after :data:`ALGORITHM_SECTION`.
TRAIN_SECTIONS: dict[str, tuple[str, ...]] = {
    "environment": ("env_name", "total_timesteps", "num_envs", "num_steps", "normalize_observations",
                    "scale_rewards"),
    "network": ("policy", "hidden_sizes", "activation", "rnn_hidden_size", "context_len", "num_heads", "embed_dim",
                "shared_torso", "torso", "cnn_channels", "privileged_keys", "log_std_init", "ortho_init",
                "action_squash"),
    ALGORITHM_SECTION: ("gamma", "gae_lambda", "ent_coef", "normalize_advantages"),
    "evaluation during training": ("eval_every", "eval_episodes"),
    "seeds": ("num_seeds", "seed", "seeds_per_batch"),
    "run: chunks, checkpoints, warnings": ("progress_chunks", "chunk_updates", "checkpoint_every", "keep_checkpoints",
                                           "collapse_entropy", "collapse_value_loss"),
    "logging (CSV and JSON lines always)": ("tensorboard", "wandb", "wandb_project", "log_seeds", "video"),
}

_GROUPS: "weakref.WeakKeyDictionary[argparse.ArgumentParser, dict[str, Any]]" = weakref.WeakKeyDictionary()


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
    """The field's help, its bounds and ``note`` (the default), without Sphinx markup; a field's choices are
    not repeated here: the flag shows them (``--algo {ppo,trpo}``)."""
    extra = []
    if f.metadata.get("bounds") is not None:
        extra.append(f"in {f.metadata['bounds']}")
    return plain(" ".join([f.metadata.get("help", ""), *(f"({e})" for e in extra), note]))


def _add(parser: Any, f: dataclasses.Field, names: list[str], help_text: str) -> None:
    """One flag for field ``f`` on ``parser`` (a parser or one of its argument groups)."""
    kind = field_kind(f)
    if kind == "bool":
        parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif kind == "tuple":
        parser.add_argument(*names, dest=f.name, type=int, nargs="+", default=None, help=help_text)
    elif kind == "names":
        parser.add_argument(*names, dest=f.name, type=str, nargs="*", default=None, help=help_text)
    else:
        caster = {"int": int, "float": float, "str": str}[kind]
        parser.add_argument(*names, dest=f.name, type=caster, choices=field_choices(f), default=None, help=help_text)


def _group(parser: argparse.ArgumentParser, title: str) -> Any:
    """The argument group ``title`` of ``parser``, created on first use (argparse leaves empty ones out of --help)."""
    groups = _GROUPS.setdefault(parser, {})
    if title not in groups:
        groups[title] = parser.add_argument_group(title)
    return groups[title]


def train_sections() -> dict[str, tuple[str, ...]]:
    """:data:`TRAIN_SECTIONS` with each algorithm's own fields (those :class:`BaseConfig` lacks) as a section
    ``"<ALGO> only"`` (``"PPO, TRPO only"`` for a field several declare) after :data:`ALGORITHM_SECTION`."""
    shared = {f.name for f in dataclasses.fields(BaseConfig)}
    own: dict[str, list[str]] = {}
    for name in config_fields():
        if name not in shared:
            algos = [algo.upper() for algo, cls in config_classes().items()
                     if name in {f.name for f in dataclasses.fields(cls)}]
            own.setdefault(f"{', '.join(algos)} only", []).append(name)
    sections: dict[str, tuple[str, ...]] = {}
    for title, names in TRAIN_SECTIONS.items():
        sections[title] = names
        if title == ALGORITHM_SECTION:
            sections.update((t, tuple(n)) for t, n in own.items())
    return sections


def section_of(name: str, sections: Mapping[str, Sequence[str]]) -> str:
    """The title of the section that lists ``name`` (:data:`UNSORTED_SECTION` if none does)."""
    return next((title for title, names in sections.items() if name in names), UNSORTED_SECTION)


def _train_group(parser: argparse.ArgumentParser, name: str) -> Any:
    sections = train_sections()
    for title in sections:  # every section now, so they list in this order whichever flags come first
        _group(parser, title)
    return _group(parser, section_of(name, sections))


def config_fields() -> dict[str, dataclasses.Field]:
    """Every config field of every registered algorithm, first declaration wins (name -> field)."""
    fields: dict[str, dataclasses.Field] = {}
    for cls in config_classes().values():
        for f in dataclasses.fields(cls):
            fields.setdefault(f.name, f)
    return fields


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of any algorithm's config, in the sections of :func:`train_sections`; defaults come
    from the chosen class."""
    for name, f in config_fields().items():
        flag = "--" + name.replace("_", "-")
        names = [flag, "--env"] if name == "env_name" else [flag]
        _add(_train_group(parser, name), f, names, _help(f, _default_note(name)))


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                        sections: Mapping[str, Sequence[str]] | None = None) -> None:
    """One flag per field of the dataclass ``cls`` of :func:`~purejaxrl_ppo.core.config.field` s (``num_envs`` ->
    ``--num-envs``, help with default and bounds, choices as ``{a,b}``), except the fields named in ``skip``;
    default ``None``. With ``sections`` (title -> field names, in order), ``--help`` lists the flags under those
    titles (a field no section names under :data:`UNSORTED_SECTION`)."""
    for title in sections or ():
        _group(parser, title)
    for f in dataclasses.fields(cls):
        if f.name not in skip:
            target = parser if sections is None else _group(parser, section_of(f.name, sections))
            _add(target, f, ["--" + f.name.replace("_", "-")], _help(f, f"[default: {_show(f.default)}]"))


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`RunOptions` field (seeds, chunking, checkpoints, logging), in the sections of
    :func:`train_sections`."""
    for f in dataclasses.fields(RunOptions):
        _add(_train_group(parser, f.name), f, ["--" + f.name.replace("_", "-")],
             _help(f, f"[default: {_show(f.default)}]"))


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """Config and run-option values given as flags (``None`` = not given), plus ``algo`` if given."""
    names = set(config_fields()) | {f.name for f in dataclasses.fields(RunOptions)}
    given = {name: getattr(args, name) for name in sorted(names) if getattr(args, name, None) is not None}
    if args.algo is not None:
        given["algo"] = args.algo
    return given
