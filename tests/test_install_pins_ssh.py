"""The host install follows its target's pins over a real sshd (ssh tier):
`deploy --offline` installs fabops' dependencies from the pre-built
wheelhouse (.ci/prebuild-wheelhouses, itself the pinned file) with
`--require-hashes`, records the file's sha256 in the install marker, and a
wheel whose hash does not match fails the install with one clear line while
the old install keeps working (docs/ci.md, "Pinning the host's install")."""
import json
import shutil

import pytest

from fabops import install
from tests.conftest import TEST_CACHE, require
from tests.harness.apps import RemoteApp

pytestmark = pytest.mark.ssh
MARKER = "~/.fabops/app/venv/fabops-install.json"


@pytest.fixture
def remote_app(ssh_host, tmp_path, deploy_env):
    return RemoteApp(ssh_host, tmp_path)


def host_target(app) -> install.HostPython:
    out = app.host.ssh("python3 -c 'import sys, platform; print(sys.version_info[0], sys.version_info[1], "
                       "platform.machine())'").stdout.split()
    return install.HostPython((int(out[0]), int(out[1])), out[2], None)


def frozen(app) -> dict:
    """name -> version of the host venv's distributions (pip's own view)."""
    out = app.host.ssh("~/.fabops/app/venv/bin/python -m pip list --format=json --disable-pip-version-check").stdout
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(out)}


def test_the_install_is_the_targets_pins_and_a_tampered_wheel_changes_nothing(remote_app, tmp_path, monkeypatch):
    pins = install.pins_for(host_target(remote_app))
    require(pins is not None, "the test host's Python has no pinned file")
    code, res = remote_app.deploy_json("--offline")
    assert code == 0, res
    assert f"pinned {pins.name}" in res["install"], res["install"]
    marker = json.loads(remote_app.host.path(MARKER).read_text())
    assert marker["pins"] == pins.sha256
    want = {name: version for name, (version, _) in _pins(pins.path).items()}
    have = frozen(remote_app)
    assert {n: have.get(n) for n in want} == want, "every pin installed at its version"

    # new pins (as a fabops upgrade would bring) reinstall the same wheel: the
    # marker is made to name other pins; the wheelhouse has one wheel tampered
    old = dict(marker, pins="0" * 64)
    remote_app.host.path(MARKER).write_text(json.dumps(old) + "\n")
    before = frozen(remote_app)
    house = tmp_path / "houses" / f"wheelhouse-cp{pins.name.split('-')[1][2:]}"
    shutil.copytree(_house(pins), house)
    rich = next(house.glob("rich-*.whl"))
    rich.write_bytes(rich.read_bytes() + b"\0")  # one byte more: another sha256
    monkeypatch.setenv("FABOPS_WHEELHOUSE", str(house.parent))
    code, res = remote_app.deploy_json("--offline")
    assert code == 2, res
    text = json.dumps(res)
    assert f"does not match the hash in {pins.name} (rich==" in text and "nothing was installed" in text, text
    # nothing changed: the same distributions, the marker untouched, fabops runs
    assert frozen(remote_app) == before
    assert json.loads(remote_app.host.path(MARKER).read_text()) == old
    assert remote_app.host.ssh("~/.fabops/app/venv/bin/fabops --version").returncode == 0


def _pins(path: str) -> dict:
    from tests.test_constraints import parse_pins

    with open(path) as f:
        return parse_pins(f.read())


def _house(pins):
    house = TEST_CACHE / f"wheelhouse-cp{pins.name.split('-')[1][2:]}"
    require(house.is_dir(), f"no wheelhouse in {house}: run .ci/prebuild-wheelhouses (bash .ci/run does)")
    return house
