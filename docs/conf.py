"""Sphinx configuration of the purejaxrl_ppo documentation site (``make docs``).

Sphinx with autodoc + napoleon because the docstrings are reST (``:func:`` roles, ````literals````)
with Google-style ``Args:``/``Returns:`` sections; MyST (through myst-nb) for the Markdown pages;
myst-nb renders the notebooks with the outputs stored in them, without executing them: ``make notebooks``
(``notebooks/execute.py``) executes them and stores the outputs with a stamp of the code that made them,
and ``tests/test_notebooks.py`` fails when a notebook's code changed after its outputs. So the build needs
no kernel and stays fast, and the heavy study notebook shows its outputs too.

Generated at every build, never edited by hand (the first three are git-ignored):

- ``docs/api/``: one page per package, listing every public name of every module (``_api_pages``);
- ``docs/notebooks/``: copies of ``notebooks/*.ipynb``, outputs included;
- the marked blocks of hand-written pages (``docs/blocks.py``): the package tree of ``architecture.md``
  and the run-directory tables of ``getting-started.md`` and ``rlhf.md`` (committed; ``tests/test_docs_blocks.py``
  checks them);
- ``docs/config.md``: the configuration reference from the config fields' metadata
  (``purejaxrl_ppo.cli.reference``; committed because ``tests/test_architecture.py`` checks it);
- ``docs/results/``: the results pages, written by ``benchmarks/results_docs.py`` (``make docs`` runs it
  before Sphinx) from the stored benchmark JSON.

``make docs`` builds with ``-n -W --keep-going``: any warning (a broken link, a reference that does not
resolve, a page outside every toctree) fails the build.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import purejaxrl_ppo  # noqa: E402  (first: applies the platform workarounds before jax computes anything)
from purejaxrl_ppo.cli.reference import config_reference  # noqa: E402


def _load_blocks():
    """``docs/blocks.py`` (the generated blocks of hand-written pages), loaded by path: docs/ is no package."""
    spec = importlib.util.spec_from_file_location("purejaxrl_ppo_docs_blocks", DOCS / "blocks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


blocks = _load_blocks()

project = "purejaxrl_ppo"
author = "purejaxrl_ppo contributors"
copyright = "purejaxrl_ppo contributors"
release = version = purejaxrl_ppo.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]
html_theme = "furo"
html_title = f"purejaxrl_ppo {release}"
html_static_path: list[str] = []

# ---- MyST / notebooks ----------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 4  # [text](page.md#a-heading) links resolve, and a missing anchor is a warning
nb_execution_mode = "off"  # rendered with their stored outputs (make notebooks); CI also runs two with nbmake
nb_merge_streams = True  # one block per cell for its printed lines, as a notebook shows them
nb_render_markdown_format = "gfm"  # Markdown outputs (the study report, RLHF samples) with their tables

# ---- autodoc -------------------------------------------------------------------------------------
autodoc_default_options = {"show-inheritance": True, "special-members": "__post_init__"}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
add_module_names = False

# Warnings are errors, and every reference must resolve (-n). Types from other libraries have no
# inventory here (the build reaches no network), so references into them are not checked; every name
# of this package must resolve.
nitpicky = True
_THIRD_PARTY = (
    "jax", "jaxlib", "jnp", "np", "numpy", "optax", "flax", "nn", "chex", "distrax", "gymnax", "brax",
    "orbax", "ocp", "matplotlib", "plt", "scipy", "pandas", "rich", "yaml", "argparse", "pathlib",
    "collections", "concurrent", "contextlib", "dataclasses", "enum", "functools", "io", "logging",
    "multiprocessing", "os", "signal", "subprocess", "threading", "types", "typing", "typing_extensions",
    "abc", "tensorboardX", "wandb", "rliable", "arch", "mujoco", "struct",
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_THIRD_PARTY)})(\..*)?"),
    # bare type names that annotations and napoleon's "Returns:" sections produce
    (r"py:class", r"(Array|ArrayLike|PRNGKey|PyTree|Params|Path|Callable|Any|Sequence|Mapping|Iterable|"
                  r"Iterator|Literal|NamedTuple|Protocol|TypeVar|Shape|DType|Mesh|Device|Sharding|"
                  r"NamedSharding|PartitionSpec|Figure|Axes|optional|callable|array|pytree|arrays)"),
]


# ---- generated sources ---------------------------------------------------------------------------
def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


_SKIP_MODULES = {"purejaxrl_ppo.__main__", "purejaxrl_ppo._moved"}


def _modules() -> list[str]:
    names = ["purejaxrl_ppo"]
    for info in pkgutil.walk_packages(purejaxrl_ppo.__path__, "purejaxrl_ppo."):
        if info.name in _SKIP_MODULES or any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(names)


def _defined_names(module) -> list[str]:
    """Top-level names a module's own source defines (functions, classes, assignments), in order."""
    tree = ast.parse(Path(inspect.getsourcefile(module)).read_text())
    names: list[str] = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                names.append(target.id)
    return list(dict.fromkeys(names))


def _is_type_alias(module, name: str) -> bool:
    """``Params = Any``, ``Array = jax.Array``: a name for another library's type, not an object of ours."""
    value = getattr(module, name, None)
    if inspect.isclass(value):
        return value.__module__ != module.__name__
    return type(value).__module__ in {"typing", "types", "typing_extensions"}


def _public_members(modname: str, documented: set[str]) -> list[str]:
    """The public names a module defines itself (a re-export is documented where it is defined, unless
    that module is private); with ``__all__``, only those it declares."""
    module = importlib.import_module(modname)
    declared = getattr(module, "__all__", None)
    own = [n for n in _defined_names(module) if not n.startswith("_") and not _is_type_alias(module, n)]
    if declared is None:
        return own
    names = [n for n in own if n in declared]
    for name in declared:
        home = getattr(getattr(module, name), "__module__", None)
        if name not in names and home and home.startswith("purejaxrl_ppo.") and home not in documented:
            names.append(name)
    return names


def _module_directives(modname: str, members: list[str]) -> list[str]:
    """automodule for the classes and functions; autofunction / autodata for the rest (autodoc's
    automodule leaves out module-level data without a ``#:`` comment and callables that are not
    functions, e.g. a ``jax.custom_batching.custom_vmap``)."""
    module = importlib.import_module(modname)
    plain, extra = [], []
    for name in members:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            plain.append(name)
        elif callable(value):
            extra += [f".. autofunction:: {modname}.{name}", ""]
        else:
            extra.append(f".. autodata:: {modname}.{name}")
            text = repr(value)
            if len(text) > 100 or " at 0x" in text:
                extra.append("   :no-value:")
            extra.append("")
    lines = ["```{eval-rst}", f".. automodule:: {modname}"]
    lines += [f"   :members: {', '.join(plain)}", "   :undoc-members:"] if plain else ["   :no-members:"]
    lines += ["", *extra, "```", ""]
    return lines


def _package_of(modname: str) -> str:
    """The API page a module goes on: its package (a module directly under purejaxrl_ppo: the top page)."""
    module = importlib.import_module(modname)
    if hasattr(module, "__path__"):
        return modname
    parent = modname.rsplit(".", 1)[0]
    return parent


def _reexport_table() -> str:
    rows = []
    for name in purejaxrl_ppo.__all__:
        obj = getattr(purejaxrl_ppo, name)
        home = obj.__module__
        rows.append(f"   ~{home}.{name}")
    return "\n".join(rows)


def _api_pages() -> None:
    pages: dict[str, list[str]] = {}
    documented = set(_modules())
    for modname in sorted(documented):
        pages.setdefault(_package_of(modname), []).append(modname)
    out = DOCS / "api"
    if out.exists():
        for stale in out.glob("*.md"):
            if stale.stem not in pages and stale.stem != "index":
                stale.unlink()
    header = "<!-- generated by docs/conf.py from the package's docstrings: do not edit -->\n\n"
    toc = []
    for package, modules in sorted(pages.items()):
        toc.append(package)
        lines = [header, f"# `{package}`\n"]
        if package == "purejaxrl_ppo":
            lines += [
                "```{eval-rst}",
                ".. automodule:: purejaxrl_ppo",
                "   :no-members:",
                "```",
                "",
                "## The public API (`import purejaxrl_ppo as pjp`)",
                "",
                "Every name below is importable as `purejaxrl_ppo.<name>`; each links to where it is defined.",
                "",
                "```{eval-rst}",
                ".. currentmodule:: None",
                "",
                ".. autosummary::",
                "   :nosignatures:",
                "",
                _reexport_table(),
                "```",
                "",
            ]
            modules = [m for m in modules if m != "purejaxrl_ppo"]
        for modname in modules:
            members = _public_members(modname, documented)
            if modname != package or package != "purejaxrl_ppo":
                lines.append(f"## `{modname}`\n")
            lines += _module_directives(modname, members)
        _write_if_changed(out / f"{package}.md", "\n".join(lines))
    index = [header, "# API reference\n",
             "Generated from the docstrings of every public module (names starting with `_` are private).",
             "The configuration fields are in the [configuration reference](../config.md).\n",
             "```{toctree}", ":maxdepth: 1", ""] + toc + ["```", ""]
    _write_if_changed(out / "index.md", "\n".join(index))


def _notebooks() -> None:
    out = DOCS / "notebooks"
    out.mkdir(exist_ok=True)
    sources = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for stale in out.glob("*.ipynb"):
        if not (ROOT / "notebooks" / stale.name).exists():
            stale.unlink()
    for nb in sources:
        target = out / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, target)


def _generate() -> None:
    _write_if_changed(DOCS / "config.md", config_reference())
    blocks.update(DOCS)
    _api_pages()
    _notebooks()
    if not (DOCS / "results" / "index.md").exists():
        raise SystemExit("docs/results/ is missing: run `make docs` (it runs benchmarks/results_docs.py first)")


_generate()


# ---- hooks ---------------------------------------------------------------------------------------
def _canonical_reexports() -> dict[str, str]:
    """``purejaxrl_ppo.<name>`` -> where the object is defined (the page that documents it)."""
    return {f"purejaxrl_ppo.{name}": f"{getattr(purejaxrl_ppo, name).__module__}.{name}"
            for name in purejaxrl_ppo.__all__}


_REEXPORTS = _canonical_reexports()


def _resolve_missing(app, env, node, contnode):
    """Resolve a reference to one of this package's names written without its full module path.

    Docstrings write ``:func:`train_seeds``` or ``:func:`purejaxrl_ppo.train_seeds``` for a name
    defined elsewhere in the package; this finds the one documented object whose dotted name ends
    with the target. A target that matches no object, or several, stays a warning.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    target = _REEXPORTS.get(target, target)
    domain = env.domains["py"]
    if target in domain.objects:
        matches = [target]
    else:
        matches = [name for name in domain.objects if name.endswith("." + target)]
    if len(matches) > 1:  # prefer the object nearest to the reference (longest shared module prefix)
        here = (node.get("py:module") or "").split(".")

        def shared(name: str) -> int:
            parts = name.split(".")
            return next((i for i, (a, b) in enumerate(zip(here, parts)) if a != b), min(len(here), len(parts)))

        best = max(map(shared, matches))
        matches = [m for m in matches if shared(m) == best]
    if len(matches) != 1:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", matches[0], node, contnode)


def _skip_member(app, what, name, obj, skip, options):
    """Skip what only restates other libraries: NamedTuple field aliases and flax Module plumbing."""
    doc = getattr(obj, "__doc__", None) or ""
    if doc.startswith("Alias for field number"):
        return True
    if name in {"setup", "__call__"} and inspect.isfunction(obj) and not obj.__doc__:
        return True
    return None


def _keep_attribute_docstrings():
    """Napoleon reads an attribute's or property's docstring "X: Y" as "type: description" (the Google
    convention for untyped attributes). Ours are typed by annotations, and "Transitions per rollout:
    ``num_envs * num_steps``" is prose: keep such docstrings as written."""
    from sphinx.ext.napoleon.docstring import GoogleDocstring

    def _parse_attribute_docstring(self):
        return self._consume_to_end()

    GoogleDocstring._parse_attribute_docstring = _parse_attribute_docstring


_FIELD = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):(\s+)(\S.*)$")


def _field_blocks(app, what, name, obj, options, lines):
    """Render the docstrings' aligned ``name:   description`` blocks (the fields of a NamedTuple or
    dataclass, one per line, continuation lines indented further) as a field list, as they read in
    the source. A block is two or more such lines at one indentation after a blank line (not under a
    Google section header such as ``Args:``, which napoleon handles)."""
    if what not in {"class", "exception", "module"}:
        return
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _FIELD.match(lines[i])
        after_blank = not out or not out[-1].strip()
        last_text = next((line for line in reversed(out) if line.strip()), "")
        starts_block = match and after_blank and not last_text.rstrip().endswith(":")
        if not starts_block:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group(1)
        entries: list[list[str]] = []
        j = i
        prose = False  # a line at the block's indentation that is not a field: a paragraph, left alone
        while j < len(lines):
            line = lines[j]
            m = _FIELD.match(line)
            if m and m.group(1) == indent:
                entries.append([f"{indent}:ivar {m.group(2)}: {m.group(4)}"])
            elif line.strip() and len(line) - len(line.lstrip()) > len(indent) and entries:
                entries[-1].append(f"{indent}   {line.strip()}")
            elif not line.strip():
                nxt = lines[j + 1] if j + 1 < len(lines) else ""
                m2 = _FIELD.match(nxt)
                if not (m2 and m2.group(1) == indent):
                    break
            else:
                prose = line.strip() != "" and len(line) - len(line.lstrip()) >= len(indent)
                break
            j += 1
        if len(entries) < 2 or prose:
            out.append(lines[i])
            i += 1
            continue
        for entry in entries:
            out.extend(entry)
        i = j
    lines[:] = out


def setup(app):
    _keep_attribute_docstrings()
    app.connect("missing-reference", _resolve_missing)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _drop_type_docstring, priority=400)
    app.connect("autodoc-process-docstring", _field_blocks, priority=400)


def _drop_type_docstring(app, what, name, obj, options, lines):
    """A module constant has no docstring of its own; autodoc would show its type's (``dict``'s)."""
    if what == "data" and lines and type(obj).__doc__ and "\n".join(lines).strip() == inspect.cleandoc(type(obj).__doc__):
        lines.clear()
