"""The sdist and the wheel: they build without deprecation warnings and hold what they should.

The wheel is the app alone; the sdist adds what builds it and what a user reads. The tests, the
demo project, the e2e suite and the benchmarks import ``project/`` and stay in the repository.
"""

from __future__ import annotations

import re

import pytest
from trove_classifiers import classifiers as known_classifiers

from tests.support.distributions import ROOT, Distributions, build_distributions

REPOSITORY_ONLY = ("tests/", "project/", "e2e/", "bench/", "harness/", "scripts/", ".ci/")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    return build_distributions(tmp_path_factory.mktemp("dists"))


def package_files() -> set[str]:
    """Every file of the bettorsense package in the source tree (what both archives must hold)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "bettorsense").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_build_prints_no_deprecation_warning(dists):
    assert re.search(r"deprecat", dists.output, re.IGNORECASE) is None, dists.output


def test_the_wheel_is_the_package_with_its_licence(dists):
    members = dists.wheel_members()
    dist_info = {name for name in members if ".dist-info/" in name}
    assert members - dist_info == package_files()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in dist_info)
    assert "bettorsense/py.typed" in members
    assert "bettorsense/templates/admin/bettorsense/health.html" in members
    assert "bettorsense/metrics/alerts.yml" in members  # the alert rules ship with the package


def test_the_sdist_holds_the_package_and_what_builds_it_but_nothing_of_the_repository(dists):
    members = dists.sdist_members()
    assert package_files() <= members
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "MANIFEST.in", "PKG-INFO"} <= members
    assert [name for name in members if name.startswith(REPOSITORY_ONLY)] == []
    outside = {name for name in members if not name.startswith(("bettorsense/", "bettorsense.egg-info/"))}
    assert outside == {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "MANIFEST.in", "PKG-INFO", "setup.cfg"}


def test_no_demo_command_ships(dists):
    shipped = dists.wheel_members() | dists.sdist_members()
    assert [name for name in shipped if "demo" in name] == []
    assert (ROOT / "project/management/commands/bettorsense_demo_user.py").is_file()


def test_the_metadata_states_licence_support_and_home(dists):
    metadata = dists.wheel_metadata()
    fields = [tuple(line.split(": ", 1)) for line in metadata.split("\n\n", 1)[0].splitlines()]
    values: dict[str, list[str]] = {}
    for key, value in fields:
        values.setdefault(key, []).append(value)
    assert values["License-Expression"] == ["MIT"]
    assert values["License-File"] == ["LICENSE"]
    assert "License" not in values  # the SPDX expression replaces the old free-text field
    classifiers = values["Classifier"]
    assert [c for c in classifiers if c not in known_classifiers] == []
    assert {"Framework :: Django :: 5.2", "Programming Language :: Python :: 3.11", "Typing :: Typed"} <= set(
        classifiers
    )
    assert [c for c in classifiers if c.startswith("License ::")] == []
    assert {url.split(",")[0] for url in values["Project-URL"]} == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert values["Requires-Python"] == [">=3.11"]
    assert "Django<5.3,>=5.2" in values["Requires-Dist"]
    assert {'redis>=5; extra == "redis"', 'celery[redis]<6,>=5.4; extra == "redis"'} <= set(values["Requires-Dist"])


def test_the_licence_file_is_the_mit_licence():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
