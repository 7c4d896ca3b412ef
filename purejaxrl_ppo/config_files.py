"""Run files: a run's config and options as YAML or TOML, and their validation.

A run file is one flat mapping: ``algo``, any field of that algorithm's config
(:class:`~purejaxrl_ppo.config.PPOConfig` / ``TRPOConfig``) and any field of
:class:`RunOptions` (seeds, chunking, checkpoints, logging)::

    algo: ppo
    env_name: CartPole-v1
    total_timesteps: 100000
    num_seeds: 8

The format follows the suffix (``.yaml``/``.yml`` or ``.toml``). Unknown keys
and wrong types raise :class:`~purejaxrl_ppo.config.ConfigError` naming the
file, the key and what is valid.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from pathlib import Path
from typing import Any

from purejaxrl_ppo.config import CONFIGS, BaseConfig, ConfigError, _help, config_from_dict

SUFFIXES = (".yaml", ".yml", ".toml")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is executed and recorded; none of these change its results.

    Chunking only decides where the host may checkpoint, log and show progress
    between compiled chunks: any plan gives bit-identical results. The device
    count does not change results either, except in the last float bits when
    it changes how many seeds a device vmaps at once; ``seeds_per_batch``
    fixes that number, making results bit-identical on any device count.
    """

    num_seeds: int = _help("independent seeds, split over every local device and vmapped", 8)
    seed: int = _help("master seed; seed i uses split(PRNGKey(seed))[i]", 0)
    seeds_per_batch: int = _help("vmap this many seeds at a time per device (sequential blocks, less memory; fixed "
                                 "blocks give bit-identical results on any device count); 0 = all at once", 0)
    progress_chunks: int = _help("about how many compiled chunks (progress, log and checkpoint points)", 20)
    chunk_updates: int = _help("updates per compiled chunk; 0 = use progress_chunks", 0)
    checkpoint_every: int = _help("save a checkpoint every this many chunks (and after the last)", 1)
    keep_checkpoints: int = _help("keep the newest this many checkpoints", 3)
    tensorboard: bool = _help("also write TensorBoard event files (needs tensorboardX)", False)
    wandb: bool = _help("also log to Weights & Biases (needs wandb; WANDB_MODE=offline works without network)", False)
    wandb_project: str = _help("Weights & Biases project", "purejaxrl_ppo")
    log_seeds: int = _help("per-seed curves for at most this many seeds in TensorBoard/W&B (CSV/JSONL hold all)", 16)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_type(f.name, getattr(self, f.name), f.type if isinstance(f.type, str) else f.type.__name__)
        for name in ("num_seeds", "progress_chunks", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("chunk_updates", "log_seeds", "seeds_per_batch"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}


def check_type(name: str, value: Any, kind: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an ``int``/``bool``/``str``/``float`` as ``kind`` says."""
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise ConfigError(f"{name} must be a number, got {value!r}")


def run_file_keys(algo: str) -> list[str]:
    """Every key a run file for ``algo`` may hold."""
    fields = [f.name for f in dataclasses.fields(CONFIGS[algo])]
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
    if algo not in CONFIGS:
        raise ConfigError(f"algo must be one of {sorted(CONFIGS)}, got {algo!r}")
    values["algo"] = algo
    valid = run_file_keys(algo)
    unknown = sorted(set(values) - set(valid))
    if unknown:
        other = {f.name for cls in CONFIGS.values() for f in dataclasses.fields(cls)} - set(valid)
        hint = f" ({', '.join(sorted(set(unknown) & other))} belong(s) to another algo)" if set(unknown) & other else ""
        raise ConfigError(f"unknown key(s) {unknown} for algo {algo!r}{hint}; valid keys: {valid}")
    option_names = {f.name for f in dataclasses.fields(RunOptions)}
    options = {k: values.pop(k) for k in list(values) if k in option_names}
    _check_config_types(CONFIGS[algo], values)
    return config_from_dict(values), RunOptions(**options)


def _check_config_types(cls: type[BaseConfig], values: dict[str, Any]) -> None:
    """Stricter than the dataclass: file values are never traced, so every float must be a number."""
    for f in dataclasses.fields(cls):
        if f.name in values:
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            if kind.startswith("tuple"):
                value = values[f.name]
                if not isinstance(value, (list, tuple)):
                    raise ConfigError(f"{f.name} must be a list of integers, got {value!r}")
                values[f.name] = tuple(value)
            else:
                check_type(f.name, values[f.name], kind)


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
