"""The host install follows its target's pins (docs/ci.md, "Pinning the
host's install"): the file picked from the probe's Python and machine, the
install marker's pins sha256, FABOPS_REQUIRE_PINNED, the wheelhouse cache
keyed by the file, and the install script's order."""
import json
import os
import subprocess
from pathlib import Path

import pytest
from invoke import MockContext, Result

from fabops import install
from fabops.errors import CONFIG, ConfigError
from fabops.inventory import load
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def host():
    return load(str(ROOT / "hosts.yml")).hosts["find-to-do"]


def probe(version: str, machine: str, marker=None) -> str:
    """What probe_cmd prints on a host with that python3 (`3 11`) and install marker."""
    out = f"@@fabops:python\n{version} {machine}\n@@fabops:marker\n"
    if marker is not None:
        out += json.dumps(marker) + "\n"
    return out + "@@fabops:fabops\n" + ("yes\n" if marker is not None else "") + "@@fabops:end\n"


WHEEL = install.Wheel("/nonexistent/fabops_ssh-0.1.0-py3-none-any.whl", "a" * 64, "0.1.0")


def dry(host, out: str) -> install.InstallResult:
    c = MockContext(run={install.probe_cmd(host): Result(out)})
    return install.ensure_installed(c, host, wheel=WHEEL, dry_run=True)


@pytest.mark.parametrize("version, machine, name", [
    ((3, 11), "x86_64", "host-cp311-x86_64.txt"),
    ((3, 9), "x86_64", "host-cp39-x86_64.txt"),
    ((3, 13), "aarch64", "host-cp313-aarch64.txt"),
    ((3, 12), "arm64", "host-cp312-aarch64.txt"),   # the same machine under another name
    ((3, 10), "amd64", "host-cp310-x86_64.txt"),
])
def test_the_pins_are_the_probed_targets_file(version, machine, name):
    pins = install.pins_for(install.HostPython(version, machine, None))
    assert pins.name == name
    assert pins.sha256 == install.sha256_file(str(install.PINS_DIR / name))


@pytest.mark.parametrize("version, machine", [((3, 14), "x86_64"), ((3, 11), "armv7l"), ((3, 9), "riscv64")])
def test_a_target_without_a_file_has_no_pins(version, machine):
    assert install.pins_for(install.HostPython(version, machine, None)) is None


def test_an_unpinned_target_says_so_and_resolves(host, monkeypatch):
    monkeypatch.delenv("FABOPS_REQUIRE_PINNED", raising=False)
    r = dry(host, probe("3 14", "aarch64"))
    assert r.changed and r.message == "would install fabops 0.1.0 (no pinned dependencies for cp314-aarch64: resolved from the index)"
    assert dry(host, probe("3 11", "x86_64")).message == "would install fabops 0.1.0 (pinned host-cp311-x86_64.txt)"


@pytest.mark.parametrize("dry_run", [True, False])
def test_require_pinned_refuses_an_unpinned_target_before_anything_runs(host, monkeypatch, dry_run):
    monkeypatch.setenv("FABOPS_REQUIRE_PINNED", "1")
    # the probe is the only command the mock answers: any other would raise
    c = MockContext(run={install.probe_cmd(host): Result(probe("3 14", "aarch64"))})
    with pytest.raises(ConfigError) as err:
        install.ensure_installed(c, host, wheel=WHEEL, dry_run=dry_run)
    assert err.value.exit_code == CONFIG == 78
    assert str(err.value) == ("find-to-do: FABOPS_REQUIRE_PINNED=1: no pinned dependencies for cp314-aarch64: "
                              "run constraints/update with that target (nothing was changed on the host)")
    # a pinned target is unaffected
    assert dry(host, probe("3 11", "x86_64")).changed


def test_new_pins_reinstall_the_same_wheel(host):
    pins = install.pins_for(install.HostPython((3, 11), "x86_64", None))
    same = {"version": "0.1.0", "sha256": WHEEL.sha256, "python": "3.11", "pins": pins.sha256}
    assert not dry(host, probe("3 11", "x86_64", same)).changed
    for old_pins in ("b" * 64, None):  # other pins, or an install from before pins
        r = dry(host, probe("3 11", "x86_64", dict(same, pins=old_pins)))
        assert r.changed and r.message.startswith("would reinstall (new pins) fabops 0.1.0")
    r = dry(host, probe("3 11", "x86_64", dict(same, sha256="c" * 64, version="0.0.9")))
    assert r.changed and r.message.startswith("would upgrade from 0.0.9 fabops 0.1.0")


def test_the_install_script_checks_the_pins_before_touching_the_old_install(host):
    pins = install.pins_for(install.HostPython((3, 9), "x86_64", None))
    marker = json.dumps({"pins": pins.sha256})
    script = install.install_script(host, WHEEL.name, marker, pins.name, None)
    lines = script.splitlines()
    deps = next(i for i, ln in enumerate(lines) if "--require-hashes" in ln)
    assert "--only-binary=:all: --no-deps --force-reinstall -r" in lines[deps] and lines[deps].endswith("/host-cp39-x86_64.txt")
    assert deps < next(i for i, ln in enumerate(lines) if ln.startswith("rm -f")), "a mismatch stops before the marker goes"
    own = next(i for i, ln in enumerate(lines) if "--force-reinstall --no-deps" in ln)
    assert deps < own < next(i for i, ln in enumerate(lines) if "-m pip check" in ln)
    assert f'"pins": "{pins.sha256}"' in lines[-1]
    unpinned = install.install_script(host, WHEEL.name, marker, None, "~/.fabops/x/dist/wheelhouse")
    assert "--require-hashes" not in unpinned and "pip check" not in unpinned
    assert unpinned.count("--no-index --find-links") == 2, "both pip runs of an offline install use the wheelhouse"


def test_the_offline_wheelhouse_is_downloaded_from_the_pins_and_cached_by_their_sha256(tmp_path, monkeypatch):
    monkeypatch.delenv("FABOPS_WHEELHOUSE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    py = install.HostPython((3, 9), "aarch64", None)
    pins = install.pins_for(py)
    calls = []
    monkeypatch.setattr(install, "download_wheelhouse", lambda p, dest, pins=None: calls.append(pins) or fill(dest, pins))
    house = tmp_path / "fabops" / "wheelhouse" / pins.sha256
    assert install.wheelhouse_for(py, True, pins) == str(house)
    assert calls == [pins] and len(list(house.glob("*.whl"))) == len(pinned_names(pins))
    assert install.wheelhouse_for(py, True, pins) == str(house) and calls == [pins], "cached"
    argv = install.download_argv(py, "/d", pins)
    assert argv[-4:] == ["--require-hashes", "--no-deps", "-r", pins.path]
    assert argv[argv.index("--python-version") + 1] == "3.9" and "manylinux_2_28_aarch64" in argv
    assert install.wheelhouse_for(py, False, pins) is None


def pinned_names(pins) -> list:
    with open(pins.path) as f:
        return [line.split("==")[0] for line in f if "==" in line and not line.startswith("#")]


def fill(dest: str, pins, names=None) -> None:
    """What pip download leaves: a wheel of each pinned name (or of `names`)."""
    Path(dest).mkdir(parents=True, exist_ok=True)  # pip -d makes it
    for name in pinned_names(pins) if names is None else names:
        (Path(dest) / f"{name.replace('-', '_')}-1.0-py3-none-any.whl").write_bytes(b"wheel")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv("FABOPS_WHEELHOUSE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "fabops" / "wheelhouse"


def test_an_interrupted_wheelhouse_download_is_fetched_again(cache, monkeypatch):
    py = install.HostPython((3, 11), "x86_64", None)
    pins = install.pins_for(py)

    def interrupted(p, dest, pins=None):
        fill(dest, pins, pinned_names(pins)[:2])  # two wheels, then ^C
        raise KeyboardInterrupt

    monkeypatch.setattr(install, "download_wheelhouse", interrupted)
    with pytest.raises(KeyboardInterrupt):
        install.wheelhouse_for(py, True, pins)
    assert list(cache.iterdir()) == [], "neither the wheelhouse nor the download's own directory is left"
    calls = []
    monkeypatch.setattr(install, "download_wheelhouse", lambda p, dest, pins=None: calls.append(dest) or fill(dest, pins))
    house = install.wheelhouse_for(py, True, pins)
    assert len(calls) == 1 and install.wheelhouse_complete(Path(house), pins)


def test_a_killed_downloads_directory_is_removed_and_a_partial_wheelhouse_refilled(cache, monkeypatch):
    py = install.HostPython((3, 9), "x86_64", None)
    pins = install.pins_for(py)
    dead = _dead_pid()
    killed = cache / f"{pins.sha256}.part-{dead}-x1"      # a download killed with -9
    running = cache / f"{pins.sha256}.part-{os.getpid()}-x2"  # one of a live process
    for d in (killed, running):
        d.mkdir(parents=True)
        fill(str(d), pins, pinned_names(pins)[:1])
    partial = cache / pins.sha256  # left by a fabops that downloaded in place
    partial.mkdir()
    fill(str(partial), pins, pinned_names(pins)[:3])
    assert not install.wheelhouse_complete(partial, pins)
    calls = []
    monkeypatch.setattr(install, "download_wheelhouse", lambda p, dest, pins=None: calls.append(dest) or fill(dest, pins))
    assert install.wheelhouse_for(py, True, pins) == str(partial)
    assert len(calls) == 1 and install.wheelhouse_complete(partial, pins)
    assert sorted(p.name for p in cache.iterdir()) == sorted([pins.sha256, running.name])


def test_an_unpinned_wheelhouse_keeps_a_live_download_of_its_tag(cache, monkeypatch):
    py = install.HostPython((3, 14), "x86_64", None)  # the key, cp314-x86_64, has a dash
    killed, running = (cache / f"{py.tag}.part-{pid}-x" for pid in (_dead_pid(), os.getpid()))
    for d in (killed, running):
        d.mkdir(parents=True)
    monkeypatch.setattr(install, "download_wheelhouse", lambda p, dest, pins=None: fill(dest, None, ["rich"]))
    assert install.wheelhouse_for(py, True, None) == str(cache / py.tag)
    assert sorted(p.name for p in cache.iterdir()) == sorted([py.tag, running.name])


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_an_unpinned_offline_install_says_it_resolves_from_the_wheelhouse(host, monkeypatch):
    monkeypatch.delenv("FABOPS_REQUIRE_PINNED", raising=False)
    c = MockContext(run={install.probe_cmd(host): Result(probe("3 14", "aarch64"))})
    r = install.ensure_installed(c, host, wheel=WHEEL, dry_run=True, offline=True)
    assert r.message == ("would install fabops 0.1.0 (no pinned dependencies for cp314-aarch64: "
                         "resolved from the --offline wheelhouse)")


def test_a_hash_mismatch_is_one_clear_line(host):
    pins = install.pins_for(install.HostPython((3, 11), "x86_64", None))
    pip = ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the "
           "package versions, please update the hashes. Otherwise, examine the package contents carefully; "
           "someone may have tampered with them.\n"
           "    rich==15.0.0 from file:///x/rich-15.0.0-py3-none-any.whl (from -r host-cp311-x86_64.txt (line 17)):\n"
           "        Expected sha256 33bd\n             Got        0000\n")
    assert install.install_failure(pip, pins) == (
        "installing fabops on the host failed: a dependency's wheel does not match the hash in host-cp311-x86_64.txt "
        "(rich==15.0.0); nothing was installed: a previous install is unchanged")
    assert install.install_failure("a\nb\nc\nd\n", pins) == "installing fabops on the host failed: b | c | d"


def test_a_wheelhouse_variable_naming_no_directory_is_said_by_name(tmp_path, monkeypatch):
    """FABOPS_WHEELHOUSE names a directory that is not there: a usage error
    naming the variable (exit 64), not os' FileNotFoundError from pip later."""
    from fabops.errors import USAGE, UsageError

    py = install.HostPython((3, 11), "x86_64", None)
    monkeypatch.setenv("FABOPS_WHEELHOUSE", str(tmp_path / "gone"))
    with pytest.raises(UsageError) as e:
        install.wheelhouse_for(py, True)
    assert e.value.exit_code == USAGE and f"FABOPS_WHEELHOUSE={tmp_path / 'gone'}: no such directory" in str(e.value)
    (tmp_path / "gone").mkdir()
    assert install.wheelhouse_for(py, True) == str(tmp_path / "gone")
    (tmp_path / "gone" / "wheelhouse-cp311").mkdir()
    assert install.wheelhouse_for(py, True) == str(tmp_path / "gone" / "wheelhouse-cp311")
