"""Which Debian mirror the booted-container images are built from
(tests/harness/container.py, docs/ci.md): this machine's own Debian mirror
on Debian, Debian's own mirror anywhere else (GitHub's Ubuntu runners name an
Ubuntu mirror, from which `debootstrap bookworm` fails), the environment's
FABOPS_DEBIAN_MIRROR first. Each case under tests/fixtures/apt_sources/ is a
machine's /etc as apt and os-release lay it out."""
from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.harness import container
from tests.harness.container import DEBIAN_MIRROR, apt_archive, apt_files, pick_mirror

CASES = ROOT / "tests" / "fixtures" / "apt_sources"

# case: (the archive mirror the machine's own apt uses, the mirror chosen)
EXPECTED = {
    # the netinst's one-line sources.list: security line and Docker's first
    "debian-bookworm-one-line": ("http://ftp.de.debian.org/debian/", "http://ftp.de.debian.org/debian/"),
    # deb822, after a third party's bookworm/main .sources, a deb-src-only
    # and a disabled stanza
    "debian-bookworm-deb822": ("http://ftp.nl.debian.org/debian", "http://ftp.nl.debian.org/debian"),
    # Debian's cloud image: deb822 through mirror+file:///etc/apt/mirrors/
    "debian-bookworm-cloud": ("https://cdn-aws.deb.debian.org/debian", "https://cdn-aws.deb.debian.org/debian"),
    "ubuntu-22.04-one-line": ("http://archive.ubuntu.com/ubuntu/", DEBIAN_MIRROR),
    "ubuntu-24.04-deb822": ("http://archive.ubuntu.com/ubuntu/", DEBIAN_MIRROR),
    # GitHub's runners: mirror+file:/etc/apt/apt-mirrors.txt, best priority
    # first whatever the line order
    "github-runner-ubuntu-24.04": ("http://azure.archive.ubuntu.com/ubuntu/", DEBIAN_MIRROR),
    "github-runner-ubuntu-22.04": ("http://azure.archive.ubuntu.com/ubuntu/", DEBIAN_MIRROR),
}


def test_every_fixture_has_its_expectation():
    assert sorted(p.name for p in CASES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_mirror_of_each_machine(case):
    """Both answers per case: the machine's own archive mirror is parsed
    from each format (so an Ubuntu machine's is found, and then not used),
    and the chosen one is Debian's."""
    os_release, sources, lists = apt_files(CASES / case)
    archive, chosen = EXPECTED[case]
    assert apt_archive(os_release, sources, lists) == archive
    assert pick_mirror(os_release, sources, lists) == chosen


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_override_wins_everywhere(case):
    files = apt_files(CASES / case)
    assert pick_mirror(*files, override=" http://mirror.example.net/debian ") == "http://mirror.example.net/debian"


def test_a_runner_reads_its_mirror_list_through_the_sources():
    """The runner's mirror list is found by the URI in ubuntu.sources, not
    by a fixed name: without that file the Ubuntu archive is not found."""
    os_release, sources, lists = apt_files(CASES / "github-runner-ubuntu-24.04")
    assert set(lists) == {"/etc/apt/apt-mirrors.txt"}
    assert "ubuntu.com" not in (apt_archive(os_release, sources, {}) or "")


def test_a_third_partys_repository_is_never_the_debian_mirror():
    """A repository with an apt-key key (no signed-by, as Microsoft's)
    before a local mirror: the mirror whose path ends in /debian is taken;
    one signed by another keyring is never taken, even alone."""
    os_release = (CASES / "debian-bookworm-one-line" / "etc" / "os-release").read_text()
    microsoft = "deb [arch=amd64] https://packages.microsoft.com/debian/12/prod bookworm main\n"
    cacher = "deb http://apt-cacher.lan:3142/debian bookworm main contrib\n"
    assert pick_mirror(os_release, [("sources.list", microsoft + cacher)], {}) == "http://apt-cacher.lan:3142/debian"
    signed = "deb [signed-by=/usr/share/keyrings/microsoft.gpg] https://packages.microsoft.com/debian/12/prod bookworm main\n"
    assert pick_mirror(os_release, [("microsoft.list", signed)], {}) == DEBIAN_MIRROR


def test_a_machine_without_files_gets_debians_mirror(tmp_path):
    assert apt_files(tmp_path) == ("", [], {})
    assert pick_mirror("", [], {}) == DEBIAN_MIRROR


def test_only_debian_itself_counts_as_debian():
    """Ubuntu says ID_LIKE=debian; its own archive is still no Debian mirror."""
    sources = [("sources.list", "deb http://archive.ubuntu.com/ubuntu/ noble main\n")]
    like = "ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n"
    assert pick_mirror(like, sources, {}) == DEBIAN_MIRROR
    assert pick_mirror(like.replace("ID=ubuntu", "ID=debian"), sources, {}) == "http://archive.ubuntu.com/ubuntu/"


def test_mirror_reads_the_environment_first(monkeypatch):
    monkeypatch.setenv(container.MIRROR_ENV, "http://mirror.example.net/debian")
    assert container.mirror() == "http://mirror.example.net/debian"
    monkeypatch.delenv(container.MIRROR_ENV)
    assert container.mirror() == pick_mirror(*apt_files())
