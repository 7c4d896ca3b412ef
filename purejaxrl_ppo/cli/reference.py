"""The configuration reference (``docs/config.md``), generated from the fields' metadata.

``python -m purejaxrl_ppo.cli.reference > docs/config.md`` rewrites it; a test fails when the
committed file differs from what the metadata gives, so the tables never drift from the code.
"""

from __future__ import annotations

import dataclasses

from purejaxrl_ppo.core.algos import config_classes
from purejaxrl_ppo.core.config import BaseConfig, field_table
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.runs.options import RunOptions


def _cell(value) -> str:
    if isinstance(value, tuple):
        value = " ".join(map(str, value))
    return "" if value is None else str(value).replace("|", "\\|")


def _table(cls: type, names: list[str] | None = None) -> str:
    rows = [r for r in field_table(cls) if names is None or r["name"] in names]
    lines = ["| field | flag | type | default | bounds / choices | sweepable | meaning |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        valid = r["bounds"] or (", ".join(r["choices"]) if r["choices"] else "")
        lines.append(f"| `{r['name']}` | `--{r['name'].replace('_', '-')}` | {r['type']} | `{_cell(r['default'])}` | "
                     f"{_cell(valid)} | {'yes' if r['traced'] else ''} | {_cell(r['help'])} |")
    return "\n".join(lines)


def config_reference() -> str:
    """Markdown: the shared fields, each algorithm's own fields (and the shared ones it re-defaults), the run options."""
    shared = [f.name for f in dataclasses.fields(BaseConfig)]
    parts = [
        "# Configuration reference",
        "",
        "Generated from the fields' metadata by `python -m purejaxrl_ppo.cli.reference > docs/config.md`",
        "(do not edit by hand). Every field is a keyword of the config class, a command-line flag of",
        "`python -m purejaxrl_ppo train` and a key of a run file. *Sweepable* fields are traced",
        "pytree leaves: `pjp.sweep` and `jax.vmap` over configs accept them.",
        "",
        "## Shared by every algorithm",
        "",
        _table(BaseConfig),
    ]
    for name, cls in config_classes().items():
        own = [f.name for f in dataclasses.fields(cls) if f.name not in shared]
        redefaulted = [f.name for f in dataclasses.fields(cls)
                       if f.name in shared and f.default != BaseConfig.__dataclass_fields__[f.name].default]
        parts += ["", f"## `{name}`: `{cls.__name__}`", "", _table(cls, own)]
        if redefaulted:
            parts += ["", "Shared fields with another default here:", "", _table(cls, redefaulted)]
    parts += ["", "## Run options (`RunOptions`: how a run is executed and recorded)", "", _table(RunOptions)]
    parts += ["", "## Language models: `RLHFConfig` (`python -m purejaxrl_ppo rlhf`, see docs/rlhf.md)", "",
              "The flags of `rlhf`, not of `train`; they are not run-file keys.", "", _table(RLHFConfig), ""]
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(config_reference(), end="")
