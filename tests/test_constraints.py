"""constraints/runtime.txt and build.txt against pyproject.toml (#30's
supply chain): the 3.11 wheelhouse of the journey and systemd tiers, and
the deploy workflow's install, are exactly those pins, so a requirement
they do not satisfy (a Dependabot pull request raising a lower bound, a new
dependency) fails here, at once and by name, not deep in the slow tiers as
an offline install that finds nothing."""
from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

try:
    import tomllib
except ImportError:  # Python 3.10: pip's own copy of tomli
    from pip._vendor import tomli as tomllib
try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip's own copy, where packaging is not installed
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) --hash=sha256:[0-9a-f]{64}")
# the deploy workflow's runner: CPython 3.11 on x86_64 Linux (constraints/update)
RUNNER = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def pins_of(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            m = PIN.fullmatch(line.strip())
            assert m, f"not `name==version --hash=sha256:<hex>`: {line!r}"
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def unmet(requirements: list[str], pins: dict[str, str]) -> list[str]:
    """Each requirement (for the runner's Python) that no pin satisfies."""
    problems = []
    for text in requirements:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate(RUNNER):
            continue
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{text}: not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{text}: pinned {version}")
    return problems


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("table, keys, constraints", [
    ("runtime", ("project", "dependencies"), "runtime.txt"),
    ("build", ("build-system", "requires"), "build.txt"),
])
def test_every_requirement_of_pyproject_is_pinned_in_constraints(table, keys, constraints):
    wanted = _pyproject()
    for key in keys:
        wanted = wanted[key]
    problems = unmet(wanted, pins_of((ROOT / "constraints" / constraints).read_text()))
    assert not problems, (f"pyproject.toml's {table} requirements that constraints/{constraints} does not satisfy: "
                          f"{problems}; run constraints/update, read the diff, run the journey tier, commit")


def test_a_raised_bound_or_a_new_dependency_is_caught():
    pins = pins_of("# header\nrich==15.0.0 --hash=sha256:" + "0" * 64 + "\n")
    assert unmet(["rich>=13"], pins) == []
    assert unmet(["rich>=16"], pins) == ["rich>=16: pinned 15.0.0"]
    assert unmet(["PyYAML>=6"], pins_of("pyyaml==6.0.4 --hash=sha256:" + "0" * 64)) == [], "names canonicalised"
    assert unmet(["tomli>=2"], pins) == ["tomli>=2: not pinned"]
    assert unmet(["tomli>=2; python_version < '3.11'"], pins) == [], "not for the runner's Python"
    with pytest.raises(AssertionError, match="not `name==version"):
        pins_of("rich>=15\n")
