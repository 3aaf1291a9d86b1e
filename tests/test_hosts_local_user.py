"""`hosts` shows the user a `connection: local` host really runs as: no
login happens, so it is whoever runs fabops here, not the `user` that
hosts.yml's `defaults` lends it (#24's trial: `"user": "ec2-user"` for the
sandbox, which ran as root, as `ping` showed). docs/hosts.md, `user`."""
from __future__ import annotations

import json
import os
import pwd

import pytest
from invoke import Context

from fabops import inventory
from tests.conftest import ROOT, run_cli
from tests.test_golden import check, render

INV = "tests/fixtures/golden/hosts-local.yml"


@pytest.mark.parametrize("width", (80, 200))
def test_the_table_says_whom_a_local_host_runs_as(capsys, monkeypatch, width):
    from fabops.tasks.inventory import hosts

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(inventory, "local_user", lambda: "ann")  # this machine's user varies
    out = render(capsys, monkeypatch, width, hosts.body, Context(), inventory=INV)
    assert "local, as ann" in out and "ec2-user@203.0.113.10" in out, out
    check("hosts-local", width, out)


def test_json_gives_the_user_it_runs_as():
    r = run_cli("hosts", "-i", INV, "--json")
    assert r.returncode == 0, r.stderr
    users = {name: h["user"] for name, h in json.loads(r.stdout)["hosts"].items()}
    assert users == {"web1": "ec2-user", "local": pwd.getpwuid(os.geteuid()).pw_name}, users


@pytest.mark.parametrize("width", (80, 200))
def test_show_says_a_local_hosts_user_is_the_local_user(capsys, monkeypatch, width):
    """#24's fresh-clone trial: `hosts --show local` said `user  root
    defaults`, where defaults lend `ec2-user`: the value is the local
    user's, and the provenance says so (human and --json)."""
    from fabops.tasks.inventory import hosts

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(inventory, "local_user", lambda: "ann")
    out = render(capsys, monkeypatch, width, hosts.body, Context(), inventory=INV, show="local")
    assert [ln.split() for ln in out.splitlines() if ln.startswith("user ")] == [["user", "ann", "local", "user"]]
    check("hosts-show-local", width, out)


def test_show_json_says_local_user():
    r = run_cli("hosts", "-i", INV, "--show", "local,web1", "--json")  # run_cli checks the schema
    assert r.returncode == 0, r.stderr
    hosts = json.loads(r.stdout)["hosts"]
    user = {name: [row["from"] for row in h["settings"] if row["key"] == "user"] for name, h in hosts.items()}
    assert user == {"local": ["local user"], "web1": ["defaults"]}, user
