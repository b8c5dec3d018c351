"""pytest plugin: connected, safe bench fixtures and YAML procedures as test items."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "VS02 bench")
    group.addoption("--station", default=None, help="station file (default: the embedded simulated bench)")
    group.addoption("--scenario", default=None, help="simulator scenario: built-in name or YAML file")
    group.addoption("--serial", default=None, help="pack serial number")
    group.addoption("--operator", default="", help="operator name recorded in runs")
    group.addoption("--bench-out", default=None, help="folder for run folders (default: a temporary folder)")
