"""`status` reads state.json through the connection (#24): whatever the file
ends with, a corrupt file is an error that says so (exit 2), and the exit
code follows what status shows. Unit tier: the real `fabops` command on a
`connection: local` host whose app never starts."""
import json
import sys

import pytest

from tests.conftest import require, run_cli
from tests.harness.sandbox import local_inventory

SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


@pytest.fixture
def host(tmp_path):
    require(sys.platform.startswith("linux"), "the process back end needs Linux")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (tmp_path / "app").mkdir()
    inv = local_inventory(tmp_path / "hosts.yml", tmp_path / "app", home, 1)
    return inv, home


def status(inv, *args):
    return run_cli("status", "-i", str(inv), *args)


@pytest.mark.parametrize("ending", ["", "\n", "\n\n"])
def test_status_reads_state_json_whatever_it_ends_with(host, ending):
    inv, home = host
    (home / "state.json").write_text(json.dumps({"deployed": SHA, "pin": None}, indent=2) + ending)
    r = status(inv, "--json")
    data = json.loads(r.stdout)["hosts"]["local"]
    assert data["deployed"] == SHA, (r.stdout, r.stderr)
    r = status(inv)
    assert "deployed 1a2b3c4d5e" in r.stdout, r.stdout + r.stderr


def test_the_state_write_over_the_connection_ends_with_a_newline(host):
    """unpin writes through state_merge_cmd (health from a laptop does too)."""
    inv, home = host
    (home / "state.json").write_text(json.dumps({"deployed": SHA, "pin": SHA, "pin_reason": "rollback"}))
    r = run_cli("unpin", "-i", str(inv))
    assert r.returncode == 0, r.stdout + r.stderr
    text = (home / "state.json").read_text()
    assert text.endswith("}\n") and json.loads(text)["pin"] is None
    assert json.loads(status(inv, "--json").stdout)["hosts"]["local"]["deployed"] == SHA


@pytest.mark.parametrize("content,problem", [('{"deployed": "%s",' % SHA, "is not valid JSON"),
                                             ("[1, 2]", "holds a JSON list, not an object")])
def test_a_corrupt_state_json_is_an_error_that_says_so(host, content, problem):
    inv, home = host
    (home / "state.json").write_text(content)
    r = status(inv)
    assert r.returncode == 2, r.stdout + r.stderr  # FAILED, docs/errors.md
    assert f"fabops: local: {home / 'state.json'} {problem}" in r.stderr, r.stderr
    assert "what is deployed is unknown" in r.stderr and "Traceback" not in r.stderr
    assert "deployed" not in r.stdout, r.stdout  # never a silent `deployed -`
    r = status(inv, "--json")
    data = json.loads(r.stdout)
    assert r.returncode == 2 and data["code"] == 2, r.stdout
    assert problem in data["hosts"]["local"]["error"] and "deployed" not in data["hosts"]["local"]


def test_no_state_yet_is_not_an_error(host):
    inv, _ = host
    r = status(inv, "--json")
    assert json.loads(r.stdout)["hosts"]["local"]["deployed"] is None, r.stderr


@pytest.mark.parametrize("state,code", [
    ({"deployed": SHA}, 2),  # the service it lists is down (never started here)
])
def test_status_exit_code_follows_what_it_shows(host, state, code):
    inv, home = host
    (home / "state.json").write_text(json.dumps(state))
    r = status(inv)
    assert "❌" in r.stdout and r.returncode == code, r.stdout + r.stderr
    assert json.loads(status(inv, "--json").stdout)["code"] == code


def test_status_code_matches_what_the_panel_shows():
    from fabops.remote import status_code

    up = [{"name": "bot", "active": True, "state": "active"}]
    assert status_code({"services": up, "deployed": SHA}) == 0
    assert status_code({"services": up + [{"name": "api", "active": False, "state": "stale"}]}) == 2
    assert status_code({"services": up, "last_result": "broken"}) == 2
    # updates failing for a commit that is not deployed: the yellow line
    assert status_code({"services": up, "deployed": SHA, "failing": {"target": "f" * 40}}) == 1
    assert status_code({"services": up, "deployed": SHA, "failing": {"target": SHA}}) == 0  # not shown
