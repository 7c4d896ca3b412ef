"""Run files: a run's config and options as YAML or TOML, and their validation.

A run file is one flat mapping: ``algo``, any field of that algorithm's config
(a registered algorithm's config class, e.g. :class:`~purejaxrl_ppo.PPOConfig`) and any field of
:class:`RunOptions` (seeds, chunking, checkpoints, logging)::

    algo: ppo
    env_name: CartPole-v1
    total_timesteps: 100000
    num_seeds: 8

The format follows the suffix (``.yaml``/``.yml`` or ``.toml``). Unknown keys,
wrong types and files that are not text raise :class:`~purejaxrl_ppo.core.config.ConfigError`
naming the file, the key and what is valid.

A saved run directory is checked here too before it is resumed or compared:
:func:`saved_run_kind` tells which command wrote it and :func:`check_run_info` that its
``run.json`` holds what ``train`` and ``sweep`` resume from.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from purejaxrl_ppo.core.algos import config_classes, config_from_dict
from purejaxrl_ppo.core.config import BaseConfig, ConfigError, check_field
from purejaxrl_ppo.runs.options import RunOptions

SUFFIXES = (".yaml", ".yml", ".toml")


def run_file_keys(algo: str) -> list[str]:
    """Every key a run file for ``algo`` may hold."""
    fields = [f.name for f in dataclasses.fields(config_classes()[algo])]
    return ["algo", *fields, *(f.name for f in dataclasses.fields(RunOptions))]


def split_run_dict(values: dict[str, Any], source: str | None = None) -> tuple[BaseConfig, RunOptions]:
    """Validate a flat run mapping and build ``(config, options)``.

    ``source`` names where the values came from (a file path) at the start of error messages.
    """
    try:
        return _split_run_dict(dict(values))
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}" if source else str(err)) from None


def _split_run_dict(values: dict[str, Any]) -> tuple[BaseConfig, RunOptions]:
    algo = values.get("algo", "ppo")
    configs = config_classes()
    if algo not in configs:
        raise ConfigError(f"algo must be one of {sorted(configs)}, got {algo!r}")
    values = {**configs[algo].upgrade_dict(values), "algo": algo}
    valid = run_file_keys(algo)
    unknown = sorted(set(values) - set(valid))
    if unknown:
        other = {f.name for cls in configs.values() for f in dataclasses.fields(cls)} - set(valid)
        hint = f" ({', '.join(sorted(set(unknown) & other))} belong(s) to another algo)" if set(unknown) & other else ""
        raise ConfigError(f"unknown key(s) {unknown} for algo {algo!r}{hint}; valid keys: {valid}")
    option_names = {f.name for f in dataclasses.fields(RunOptions)}
    options = {k: values.pop(k) for k in list(values) if k in option_names}
    _check_file_types(configs[algo], values)
    _check_file_types(RunOptions, options)
    return config_from_dict(values), RunOptions(**options)


def _check_file_types(cls: type, values: dict[str, Any]) -> None:
    """Stricter than the dataclass: file values are never traced, so every float must be a number."""
    for f in dataclasses.fields(cls):
        if f.name in values:
            values[f.name] = check_field(f, values[f.name], traced_ok=False)


def run_dict(config: BaseConfig, options: RunOptions) -> dict[str, Any]:
    """The flat mapping a run file holds (``algo`` first, then the config, then the options)."""
    return {**config.to_dict(), **options.to_dict()}


# ---------------------------------------------------------------------------- file IO


def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads ``1e-3`` as a float (YAML 1.1 would read it as a string)."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+$"),
        list("-+0123456789."),
    )
    return Loader


def read_run_file(path: Path | str) -> dict[str, Any]:
    """The mapping in a YAML or TOML file; errors name the file."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"{path}: config files must end in {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file (byte {err.start} is not UTF-8); a run file is YAML or TOML "
                          "text") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror or err})") from None
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib

            values = tomllib.loads(text)
        else:
            import yaml

            values = yaml.load(text, Loader=_yaml_loader()) or {}
    except Exception as err:  # yaml.YAMLError / tomllib.TOMLDecodeError: report, don't trace back
        raise ConfigError(f"{path}: cannot parse: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(values).__name__}")
    return values


def load_run_file(path: Path | str) -> tuple[BaseConfig, RunOptions]:
    """``(config, options)`` from a YAML or TOML run file, validated."""
    return split_run_dict(read_run_file(path), source=str(path))


def write_run_file(path: Path | str, config: BaseConfig, options: RunOptions, header: str = "") -> Path:
    """Write ``config`` and ``options`` as YAML or TOML (by suffix); loading it gives them back."""
    path = Path(path)
    values = run_dict(config, options)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    if path.suffix == ".toml":
        import tomli_w

        text = tomli_w.dumps(values)
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(values, sort_keys=False, default_flow_style=None)
    else:
        raise ConfigError(f"{path}: config files must end in {', '.join(SUFFIXES)}")
    path.write_text(comment + text)
    return path


# ---------------------------------------------------------------------------- saved run directories
def saved_run_kind(run_dir: Path | str) -> str | None:
    """Which command wrote ``run_dir``: ``"rlhf"`` (its ``run.json`` says ``"algo_name": "rlhf"``), ``"sweep"``
    (its ``config.yaml`` has a ``sweep`` grid), ``"train"`` (any other ``config.yaml``), or None (neither file is
    there or readable)."""
    import json

    run_dir = Path(run_dir)
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict) and info.get("algo_name") == "rlhf":
        return "rlhf"
    if not (run_dir / "config.yaml").is_file():
        return None
    try:
        values = read_run_file(run_dir / "config.yaml")
    except ConfigError:
        return "train"
    return "sweep" if "sweep" in values else "train"


def check_run_info(run_dir: Path | str, command: str) -> None:
    """Raise a one-line :class:`~purejaxrl_ppo.runs.rundir.RunDirError` unless ``run_dir/run.json`` (where it
    exists) is what ``command`` (``train``, ``sweep``) resumes from: a JSON object whose ``plan`` is a non-empty
    list of positive update counts (summing to its ``num_updates``, where given)."""
    import json
    import shlex

    from purejaxrl_ppo.runs.rundir import RunDirError

    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        return  # the resume says what is missing
    fresh = (f"start a new run from its config with: python -m purejaxrl_ppo {command} --config "
             f"{shlex.quote(str(run_dir / 'config.yaml'))} --out NEW_DIR")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RunDirError(f"cannot resume {run_dir}: {path} is not valid JSON ({err}); {fresh}") from None
    plan = info.get("plan") if isinstance(info, dict) else None
    if not isinstance(info, dict) or "plan" not in info:
        raise RunDirError(f"cannot resume {run_dir}: {path} has no chunk plan (\"plan\": the updates of each chunk); "
                          f"it was damaged or not written by `{command}`; {fresh}")
    valid = (isinstance(plan, list) and plan
             and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in plan))
    total = info.get("num_updates")
    if not valid or (isinstance(total, int) and sum(plan) != total):
        raise RunDirError(f"cannot resume {run_dir}: {path} has a damaged chunk plan {str(plan)[:80]} (positive update "
                          f"counts summing to num_updates {total}); {fresh}")
