"""Test session setup. Importing purejaxrl_ppo first applies the XLA:CPU workaround.

The tests mirror the package's folders (tests/core/, tests/launch/, ...). Their shared
helpers live in tests/helpers.py; this file puts tests/ on ``sys.path`` so every test
module, in any folder, can ``from helpers import ...``.

Every test (and every subprocess a test starts) shares one persistent JAX compilation
cache for the session, in a fresh temporary directory, unless the caller set
``JAX_COMPILATION_CACHE_DIR``: many tests compile the same small programs (the CLI
tests in several processes), and a cache hit returns the same executable XLA would
build again, so results are unchanged and the run is shorter. The directory starts
empty, so nothing from an earlier run (or another jax version) is reused.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)  # `from helpers import ...` from any test folder

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE_DIR = tempfile.mkdtemp(prefix="purejaxrl-ppo-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE_DIR
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
else:
    _CACHE_DIR = None

import purejaxrl_ppo  # noqa: E402,F401  (must precede any jax computation)


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's compilation cache (only the one this file created)."""
    if _CACHE_DIR is not None:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
