"""The commands a deploy's messages hand a person (`--no-watch`: `inv
deploy -H HOST --attach ID` follows the watch, `inv history` shows how it
ended; a lost link names both) work as printed: they name the inventory
with `-i PATH` when the usual lookup would not find the one this deploy
used, quoted as a shell reads them (shell.join). They left `-i` out, so
after `deploy -i staging.yml --no-watch` the command failed (unknown host,
exit 64, or no inventory)."""
from __future__ import annotations

import json
import re
import shlex
from types import SimpleNamespace

import pytest

from tests.conftest import run_cli
from tests import test_golden
from tests.test_golden import NOW, SHA, WIDTHS, check, render

frozen = test_golden.frozen  # the golden files' clock and TZ (a fixture)

COMMAND = re.compile(r"`([^`]+)`")


def _no_watch_outcome(inventory):
    import yaml

    from fabops import inventory as inv
    from fabops.deploy import DeployOptions, DeployOutcome, _finish

    spec = {"app": {"path": "/srv/app"}, "services": [{"name": "voice-meeting-discord-bot.service"}]}
    h = inv.loads(yaml.safe_dump({"hosts": {"staging-eu-west-1": spec}}), "x.yml").hosts["staging-eu-west-1"]
    outcome = DeployOutcome(h.name, "20261129T114640-4f2e1a")
    outcome.events = [{"kind": "start", "t": NOW - 2, "trigger": "deploy", "actor": "alice@laptop"}]
    _finish(h, DeployOptions(watch=False, actor="alice@laptop", inventory=inventory), outcome,
            {"kind": "watch", "seconds": 30, "from": SHA[1], "to": SHA[2], "t": NOW})
    return outcome


def test_the_commands_name_the_inventory_quoted():
    message = _no_watch_outcome("inv/staging hosts.yml").result["message"]
    assert COMMAND.findall(message) == [
        "fabops deploy -i 'inv/staging hosts.yml' -H staging-eu-west-1 --attach 20261129T114640-4f2e1a",
        "fabops history -i 'inv/staging hosts.yml' -H staging-eu-west-1"], message
    message = _no_watch_outcome(None).result["message"]  # the usual lookup finds it: as before
    assert COMMAND.findall(message) == ["fabops deploy -H staging-eu-west-1 --attach 20261129T114640-4f2e1a",
                                        "fabops history -H staging-eu-west-1"], message


@pytest.mark.parametrize("width", WIDTHS)
def test_the_attach_command_with_its_inventory_stays_whole(width, frozen, capsys, monkeypatch):
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    outcome = _no_watch_outcome("staging.yml")
    text = render(capsys, monkeypatch, width, _report,
                  FanoutResult([HostResult("staging-eu-west-1", value=outcome)]), False)
    command = "`fabops deploy -i staging.yml -H staging-eu-west-1 --attach 20261129T114640-4f2e1a`"
    # on one line where it fits one (76 columns: this one does not at 80),
    # else wrapped at its spaces, whole
    assert any(command in line for line in text.splitlines()) or len(command) > width - 4, text
    assert command in " ".join(text.split()) and "…" not in text, text
    check("deploy-no-watch-inventory", width, text)


def test_the_flag_is_left_out_only_where_the_usual_lookup_finds_that_file(tmp_path, monkeypatch):
    from fabops.tasks.deploy import inventory_flag

    (tmp_path / "hosts.yml").write_text("hosts: {}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "staging.yml").write_text("hosts: {}\n")
    monkeypatch.chdir(tmp_path / "sub")  # hosts.yml is found above, as inv finds tasks.py
    monkeypatch.delenv("FABOPS_INVENTORY", raising=False)
    assert inventory_flag(None) is None
    assert inventory_flag("../hosts.yml") is None and inventory_flag(str(tmp_path / "hosts.yml")) is None
    assert inventory_flag("../staging.yml") == "../staging.yml"
    monkeypatch.setenv("FABOPS_INVENTORY", str(tmp_path / "staging.yml"))
    assert inventory_flag("../staging.yml") is None  # the lookup finds it too, in this shell
    assert inventory_flag("../hosts.yml") == "../hosts.yml"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FABOPS_INVENTORY")
    (tmp_path / "hosts.yml").unlink()
    assert inventory_flag("staging.yml") == "staging.yml"  # no default inventory at all


def test_a_no_watch_deploy_with_i_names_commands_that_work_as_printed(sandbox, tmp_path):
    """The sandbox host, deployed with `-i` (its path has a space) from the
    repository, whose own hosts.yml knows no host `local`: the --attach
    command, pasted as printed, follows the run to its end; the history
    command shows it."""
    import yaml

    assert sandbox.result()[0] == 0
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["services"][0]["watch"] = "3s"
    inventory = tmp_path / "my hosts.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    v2 = sandbox.origin.good("2")
    r = run_cli("deploy", "-i", str(inventory), "--no-watch", "--json")
    res = SimpleNamespace(**json.loads(r.stdout)["hosts"]["local"])
    assert r.returncode == 0 and res.watching is True and res.to == v2, r.stdout + r.stderr
    attach, history = (shlex.split(c) for c in COMMAND.findall(res.message))
    assert attach == ["fabops", "deploy", "-i", str(inventory), "-H", "local", "--attach", res.run_id], res.message
    r = run_cli(*attach[1:], "--json", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["hosts"]["local"]["result"] == "deployed", r.stdout
    assert history == ["fabops", "history", "-i", str(inventory), "-H", "local"], res.message
    r = run_cli(*history[1:])
    assert r.returncode == 0 and v2[:10] in r.stdout, r.stdout + r.stderr
