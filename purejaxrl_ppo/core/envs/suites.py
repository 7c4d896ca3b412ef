"""The optional environment suites: which name prefix selects which adapter, and which extra installs it.

Every suite beyond gymnax and Brax is one adapter module in this folder that imports
its package lazily (on the first ``make_env`` of one of its names), so a suite that is
not installed costs nothing until it is asked for, and then says which extra to
install. An adapter module defines:

- ``env_ids() -> tuple[str, ...]``: the names it accepts after the prefix;
- ``make(env_id: str, options: dict[str, str]) -> Env``: the environment, unwrapped
  (``make_env`` adds episode statistics); ``options`` are the name's ``?k=v`` pairs;
- ``OPTIONS``: the option names it accepts (may be empty).

Names are ``"<prefix><env id>"`` with optional options, e.g. ``"craftax/Craftax-Classic-Symbolic-v1"``
or ``"jumanji/Snake-v1"``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
from types import ModuleType
from urllib.parse import parse_qsl


@dataclasses.dataclass(frozen=True)
class Suite:
    """One optional suite: ``prefix`` of its names, the adapter ``module``, the ``package`` it needs
    (import name) and the ``extra`` that installs it (``pip install -e '.[<extra>]'``), or for a suite
    that cannot be an extra, ``install_note``: the command that installs it."""

    prefix: str
    module: str
    package: str
    extra: str
    install_note: str = ""

    @property
    def install_hint(self) -> str:
        """The command that installs the suite: its extra, or ``install_note`` for a suite without one."""
        return self.install_note or f"pip install -e '.[{self.extra}]'"


_ADAPTERS = "purejaxrl_ppo.core.envs."

#: Every optional suite, by prefix. Kinetix (``kinetix-env``) is absent: it does not resolve with jax 0.10.2.
SUITES: tuple[Suite, ...] = (
    Suite("playground/", _ADAPTERS + "playground_env", "mujoco_playground", "playground"),
    Suite("craftax/", _ADAPTERS + "craftax_env", "craftax", "craftax"),
    Suite("jumanji/", _ADAPTERS + "jumanji_env", "jumanji", "jumanji"),
    Suite("navix/", _ADAPTERS + "navix_env", "navix", "navix"),
    Suite("xland/", _ADAPTERS + "xland_env", "xminigrid", "xland"),
    # no extra: popgym-arcade's dependency stable-gymnax would overwrite gymnax 1.0 (docs/envs/popgym-arcade.md)
    Suite("popgym_arcade/", _ADAPTERS + "popgym_arcade_env", "popgym_arcade", "",
          "pip install --no-deps popgym-arcade==0.0.7 && pip install 'dm_pix>=0.4.5,<0.5' 'jaxtyping>=0.3,<0.4' "
          "(--no-deps: its dependency stable-gymnax would overwrite gymnax 1.0)"),
)


def suite_of(name: str) -> Suite | None:
    """The optional suite ``name`` belongs to (by prefix), or ``None``."""
    for suite in SUITES:
        if name.startswith(suite.prefix):
            return suite
    return None


def split_name(name: str) -> tuple[str, dict[str, str]]:
    """``"<prefix><id>?k=v&..."`` -> ``(id, {k: v})``; raises ``ValueError`` on unparsable options."""
    suite = suite_of(name)
    rest = name[len(suite.prefix):] if suite else name
    env_id, _, query = rest.partition("?")
    if not query:
        return env_id, {}
    try:
        return env_id, dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise ValueError(f"cannot parse the options {query!r} in {name!r}; expected <env>?key=value&...") from None


def load_adapter(suite: Suite) -> ModuleType:
    """The suite's adapter module; ``ValueError`` saying which extra to install when its package is missing."""
    if importlib.util.find_spec(suite.package) is None:
        raise ValueError(f"the {suite.prefix.rstrip('/')} suite needs the {suite.package!r} package: {suite.install_hint}")
    return importlib.import_module(suite.module)


def check_suite_name(name: str) -> tuple[Suite, str, dict[str, str]]:
    """Validate a suite name: ``(suite, env id, options)``, or ``ValueError`` naming what is wrong
    (unknown id with the suite's names and a close match, unknown option, missing package)."""
    suite = suite_of(name)
    if suite is None:
        raise ValueError(f"{name!r} names no optional suite; prefixes: {', '.join(s.prefix for s in SUITES)}")
    env_id, options = split_name(name)
    adapter = load_adapter(suite)
    known = tuple(adapter.env_ids())
    if env_id not in known:
        close = difflib.get_close_matches(env_id, known, n=1)
        hint = f" (did you mean {suite.prefix + close[0]!r}?)" if close else ""
        raise ValueError(f"unknown {suite.prefix.rstrip('/')} environment {env_id!r}{hint}; known: "
                         f"{', '.join(suite.prefix + k for k in known)}")
    unknown = sorted(set(options) - set(getattr(adapter, "OPTIONS", ())))
    if unknown:
        valid = ", ".join(getattr(adapter, "OPTIONS", ())) or "none"
        raise ValueError(f"unknown option(s) {unknown} in {name!r}; valid options: {valid}")
    return suite, env_id, options


def make_suite_env(name: str):
    """Build a suite environment (unwrapped) from its full name."""
    suite, env_id, options = check_suite_name(name)
    return load_adapter(suite).make(env_id, options)


def suite_env_names(suite: Suite) -> tuple[str, ...]:
    """Every full name of an installed suite (empty when its package is missing)."""
    try:
        adapter = load_adapter(suite)
    except ValueError:
        return ()
    return tuple(suite.prefix + env_id for env_id in adapter.env_ids())
