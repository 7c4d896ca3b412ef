"""Run files: a run's config and options as YAML or TOML, and their validation.

A run file is one flat mapping: ``algo``, any field of that algorithm's config
(a registered algorithm's config class, e.g. :class:`~purejaxrl_ppo.PPOConfig`) and any field of
:class:`RunOptions` (seeds, chunking, checkpoints, logging)::

    algo: ppo
    env_name: CartPole-v1
    total_timesteps: 100000
    num_seeds: 8

The format follows the suffix (``.yaml``/``.yml`` or ``.toml``). Unknown keys
and wrong types raise :class:`~purejaxrl_ppo.core.config.ConfigError` naming the
file, the key and what is valid.
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
    text = path.read_text()
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
