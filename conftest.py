"""Repo-wide pytest configuration: the bench fixtures, markers and YAML procedure items.

They live in :mod:`bench.pytest_plugin` (docs/pytest.md), which pytest loads by itself through
the ``bench`` pytest11 entry point once the package is installed (``pip install -e .``). This
file only loads it when that did not happen: a checkout that is not installed, or
``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set. Loading it twice would be an error.
"""

import os
from importlib.metadata import entry_points

_AUTOLOADED = not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") and any(
    ep.value == "bench.pytest_plugin" for ep in entry_points(group="pytest11"))

pytest_plugins = [] if _AUTOLOADED else ["bench.pytest_plugin"]
