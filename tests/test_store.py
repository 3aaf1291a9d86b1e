"""The Store protocol (fabops/host/store.py): the same tests, run against
LocalStore on a home of this machine and RemoteStore over a real sshd on
loopback (where a person meets it: health over SSH, unpin), so the two
cannot drift apart. The RemoteStore cases are the ssh tier."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from fabops import inventory
from fabops.errors import LockedError
from fabops.host.store import LocalStore, Store
from tests.conftest import write_inventory


@dataclass
class Side:
    store: Store
    host: inventory.Host
    at: Callable[[str], Path]  # a host path, as this test sees that file

    def state(self) -> Path:
        return self.at(self.host.paths.state)

    def write_state(self, text) -> None:
        where = self.state()
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_bytes(text if isinstance(text, bytes) else text.encode())

    def read_state(self) -> dict:
        return json.loads(self.state().read_text())

    def health_log(self) -> Path:
        return self.at(self.host.logs.get("health") or self.host.paths.health_log)


def _local(tmp_path: Path, logs: dict) -> Side:
    inv = write_inventory(tmp_path / "hosts.yml", {"h": {"connection": "local", "home": str(tmp_path / "home"),
                                                        "app": {"path": str(tmp_path / "app")}, "logs": logs}})
    host = inventory.load(str(inv)).hosts["h"]
    return Side(LocalStore(host), host, lambda p: Path(os.path.expanduser(p)))


def _remote(request, tmp_path: Path, logs: dict) -> Side:
    from fabops.connection import connect
    from fabops.remote import RemoteStore

    ssh_host = request.getfixturevalue("ssh_host")
    inv = inventory.load(str(write_inventory(tmp_path / "hosts.yml", {"h": ssh_host.inventory_entry(logs=logs)})))
    host = inv.hosts["h"]
    cxn = connect(host, inv)
    request.addfinalizer(cxn.close)
    return Side(RemoteStore(cxn, host), host, ssh_host.path)


SIDES = [pytest.param("local", id="LocalStore"), pytest.param("remote", id="RemoteStore", marks=pytest.mark.ssh)]


@pytest.fixture(params=SIDES)
def side(request, tmp_path):
    """A Store on a fresh home, with the default health log."""
    return _local(tmp_path, {}) if request.param == "local" else _remote(request, tmp_path, {})


@pytest.fixture(params=SIDES)
def side_with_log(request, tmp_path):
    """A Store whose hosts.yml names the health log as a person writes it:
    ~/ for the host's user."""
    logs = {"health": "~/logs/health.log"}
    return _local(tmp_path, logs) if request.param == "local" else _remote(request, tmp_path, logs)


def test_both_are_stores(side):
    assert isinstance(side.store, Store)
    assert not isinstance(object(), Store)


def test_a_missing_state_loads_as_nothing(side):
    assert not side.state().exists()
    assert side.store.load() == {}


def test_update_merges_and_keeps_what_others_wrote(side):
    side.store.update({"health": {"status": "down"}})
    assert side.read_state() == {"health": {"status": "down"}}
    side.write_state(json.dumps({**side.read_state(), "pin": "abc", "deployed": "def"}))  # a run, meanwhile
    side.store.update({"restarts": [1.5], "health": {"status": "ok"}})
    want = {"health": {"status": "ok"}, "pin": "abc", "deployed": "def", "restarts": [1.5]}
    assert side.read_state() == want
    assert side.store.load() == want
    assert side.state().read_text().endswith("}\n")
    assert oct(side.state().stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("corrupt", [b'{"deployed": "abc", ', b"[1, 2]", b"\xff\xfe not text"])
def test_a_corrupt_state_reads_as_nothing_and_moves_aside_on_the_next_write(side, corrupt):
    side.write_state(corrupt)
    before = side.state().read_bytes()
    assert side.store.load() == {}
    assert side.state().read_bytes() == before  # a read writes nothing
    side.store.update({"health": {"status": "ok"}})
    assert side.read_state() == {"health": {"status": "ok"}}
    aside = sorted(side.state().parent.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].name.split("-")[-1].isdigit(), aside
    assert aside[0].read_bytes() == before


def test_record_appends_to_the_history_and_merges_the_state(side):
    """A task's verdict recorded as a run's (health --fix, restart:
    host/record.healthy_again): one history line, and state.json's merge
    that keeps what others wrote."""
    side.write_state(json.dumps({"deployed": "abc", "last_result": "broken", "pin": "p"}))
    side.store.record({"last_result": "deployed", "last_check": 2.5}, {"run_id": "r1", "result": "deployed"})
    side.store.record({"last_check": 3.5}, {"run_id": "r2", "result": "deployed"})
    assert side.read_state() == {"deployed": "abc", "last_result": "deployed", "pin": "p", "last_check": 3.5}
    history = side.at(side.host.paths.history)
    assert [json.loads(line)["run_id"] for line in history.read_text().splitlines()] == ["r1", "r2"]
    assert oct(history.stat().st_mode & 0o777) == "0o600"


def test_the_lock_excludes_a_second_holder_and_records_the_first(side):
    first = {"actor": "cron@host", "trigger": "health", "target": None, "since": 1.0e9, "pid": 4242}
    held = side.store.lock(first)
    try:
        record = json.loads(side.at(side.host.paths.lock).read_text())
        assert {k: record.get(k) for k in first} == first
        with pytest.raises(LockedError) as err:
            side.store.lock({"actor": "ops@laptop", "trigger": "health", "target": None, "since": 2.0e9,
                             "pid": 1})
        assert err.value.host == "h"
        assert err.value.message.startswith("locked: health by cron@host (") and "pid 4242" in err.value.message
    finally:
        held.release()
    assert side.at(side.host.paths.lock).read_text() == ""  # released: the record goes with it
    side.store.lock({"actor": "ops@laptop", "trigger": "health", "since": 2.0e9, "pid": 1}).release()


def test_log_appends_lines_to_the_home(side):
    side.store.log("2026-01-01T00:00:00+0000 h OK ok: all services healthy")
    side.store.log("second\n")
    log = side.health_log()
    assert log.read_text() == "2026-01-01T00:00:00+0000 h OK ok: all services healthy\nsecond\n"
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_a_log_named_in_hosts_yml_with_a_tilde_is_in_the_users_home(side_with_log, tmp_path, monkeypatch):
    """LocalStore wrote `~/logs/health.log` to a directory named `~` under
    the working directory; over SSH the host's shell reads ~/ as the home."""
    monkeypatch.chdir(tmp_path)
    side_with_log.store.log("one")
    log = side_with_log.health_log()
    assert log.read_text() == "one\n"
    assert oct(log.parent.stat().st_mode & 0o777) == "0o700"
    assert not Path("~").exists()
