"""constraints/runtime.txt, build.txt and every host target's
fabops/constraints/host-cpXY-ARCH.txt against pyproject.toml (#30's supply
chain): the wheelhouses of the journey, ssh and systemd tiers, the deploy
workflow's install and the host's own install are exactly those pins, so a
requirement they do not satisfy (a Dependabot pull request raising a lower
bound, a new dependency) or a pin whose Requires-Python shuts out its target's
Python fails here, at once and by name, not deep in the slow tiers as an
offline install that finds nothing."""
from __future__ import annotations

import re
import zipfile

import pytest

from tests.conftest import ROOT

try:
    import tomllib
except ImportError:  # Python 3.10: pip's own copy of tomli
    from pip._vendor import tomli as tomllib
try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
except ImportError:  # pip's own copy, where packaging is not installed
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.utils import canonicalize_name

PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?: --hash=sha256:[0-9a-f]{64})+)"
                 r"(?:  # requires-python (\S+))?")
PINS_DIR = ROOT / "fabops" / "constraints"
# every host target constraints/update writes: CPython 3.9 to 3.13, x86_64 and aarch64
TARGETS = [f"cp3{minor}-{machine}" for machine in ("x86_64", "aarch64") for minor in range(9, 14)]


def environment(target: str) -> dict[str, str]:
    """The marker environment of a target (`cp311-x86_64`): its Python as pip
    resolves it for `--python-version 3.11` (3.11.0)."""
    m = re.fullmatch(r"cp3(\d+)-(\w+)", target)
    return {"python_version": f"3.{m.group(1)}", "python_full_version": f"3.{m.group(1)}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": m.group(2), "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


# the deploy workflow's runner: CPython 3.11 on x86_64 Linux (constraints/update)
RUNNER = environment("cp311-x86_64")


def parse_pins(text: str) -> dict[str, tuple[str, str | None]]:
    """{name: (version, Requires-Python or None)} of a constraints file."""
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            m = PIN.fullmatch(line.strip())
            assert m, f"not `name==version --hash=sha256:<hex>...[  # requires-python SPEC]`: {line!r}"
            pins[canonicalize_name(m.group(1))] = (m.group(2), m.group(4))
    return pins


def pins_of(text: str) -> dict[str, str]:
    return {name: version for name, (version, _) in parse_pins(text).items()}


def unmet(requirements: list[str], pins: dict[str, str], env: dict[str, str] = RUNNER) -> list[str]:
    """Each requirement (for that environment's Python) that no pin satisfies."""
    problems = []
    for text in requirements:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate(env):
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


def shut_out(pins: dict[str, tuple[str, str | None]], env: dict[str, str]) -> list[str]:
    """Each pin whose Requires-Python does not admit that environment's Python."""
    return [f"{name}=={version} requires-python {requires}" for name, (version, requires) in sorted(pins.items())
            if requires and not SpecifierSet(requires).contains(env["python_full_version"], prereleases=True)]


def test_every_host_target_has_its_pins():
    assert sorted(p.name for p in PINS_DIR.glob("host-*.txt")) == sorted(f"host-{t}.txt" for t in TARGETS), (
        "fabops/constraints/ must hold exactly the targets constraints/update writes")


@pytest.mark.parametrize("target", TARGETS)
def test_each_host_targets_pins_satisfy_pyproject_for_its_python(target):
    env = environment(target)
    pins = parse_pins((PINS_DIR / f"host-{target}.txt").read_text())
    problems = unmet(_pyproject()["project"]["dependencies"], {n: v for n, (v, _) in pins.items()}, env)
    problems += shut_out(pins, env)
    assert not problems, (f"fabops/constraints/host-{target}.txt for Python {env['python_version']}: {problems}; "
                          "run constraints/update, read the diff, run the journey tier, commit")
    assert pins["markdown-it-py"][1], "constraints/update records each pin's Requires-Python"


def test_a_pin_whose_requires_python_shuts_out_the_target_is_caught():
    """The markdown-it-py case: 4.x needs Python 3.10, so 3.9's file must pin 3.x."""
    line = "markdown-it-py==4.0.0 --hash=sha256:" + "0" * 64 + "  # requires-python >=3.10\n"
    assert shut_out(parse_pins(line), environment("cp39-x86_64")) == ["markdown-it-py==4.0.0 requires-python >=3.10"]
    assert shut_out(parse_pins(line), environment("cp310-x86_64")) == []
    two = "cffi==2.0.0 --hash=sha256:" + "1" * 64 + " --hash=sha256:" + "2" * 64 + "\n"
    assert parse_pins(two) == {"cffi": ("2.0.0", None)}, "several hashes of one version, no Requires-Python"
    assert unmet(["tomli>=2; python_version < '3.11'"], {}, environment("cp39-x86_64")) == ["tomli>=2; python_version < '3.11': not pinned"]


def test_runtime_txt_is_the_runners_host_file():
    """The deploy workflow's runner installs what a 3.11 x86_64 host does."""
    def body(path):
        return [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert body(ROOT / "constraints" / "runtime.txt") == body(PINS_DIR / "host-cp311-x86_64.txt")


def test_the_built_wheel_ships_every_host_file(fabops_wheel):
    names = zipfile.ZipFile(fabops_wheel).namelist()
    want = sorted(f"fabops/constraints/{p.name}" for p in PINS_DIR.glob("host-*.txt"))
    assert want and sorted(n for n in names if n.startswith("fabops/constraints/")) == want
