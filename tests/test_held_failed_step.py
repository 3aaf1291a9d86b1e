"""Issue #24: the deploy's held `✗` line (tasks/deploy._Printer holds a
failed step's line until the next event, to drop it when that event is a
refused flag's result) was lost when the following ended right after the
failed step: a run that ended without a result, a lost link, Ctrl-C. Now
deploy_host ends every following with deploy.END, which says it."""
import pytest

from fabops import deploy, errors, inventory
from fabops.tasks.deploy import _Printer

HOST = inventory.loads("hosts: {web1: {app: {path: /srv/app}}}", "h.yml").hosts["web1"]
FAILED = {"kind": "step", "step": "gate", "status": "failed", "seconds": 1.5, "message": "bot died after starting"}


def follow_then(monkeypatch, end):
    """_deploy_host as a following that saw the gate fail, then `end()`."""
    def fake(c, host, opts, on_event):
        on_event({"kind": "step", "step": "gate", "status": "start"})
        on_event(FAILED)
        return end()

    monkeypatch.setattr(deploy, "_deploy_host", fake)


def raise_(exc):
    raise exc


@pytest.mark.parametrize("end", [
    lambda: raise_(errors.CommandFailed("the run r1 ended (exit 1) without a result", host="web1")),
    lambda: raise_(errors.UnreachableError("lost contact: no event from the host for 30 s", host="web1")),
    lambda: raise_(KeyboardInterrupt()),
    lambda: deploy.DeployOutcome("web1", "r1"),
], ids=["no-result", "lost-link", "ctrl-c", "returned"])
def test_the_failed_steps_line_is_said_when_the_following_ends(monkeypatch, capsys, end):
    follow_then(monkeypatch, end)
    try:
        deploy.deploy_host(None, HOST, deploy.DeployOptions(), _Printer(len("web1"))("web1"))
    except (errors.FabopsError, KeyboardInterrupt):
        pass
    out = capsys.readouterr().out
    assert out == "[web1] ✗ gate (1.50s) bot died after starting\n", out


def test_a_refused_flags_result_still_drops_it(monkeypatch, capsys):
    """The hold's reason stays: the refused --ref is its one error line."""
    def fake(c, host, opts, on_event):
        on_event(FAILED)
        on_event({"kind": "result", "result": "aborted", "exit_code": errors.USAGE, "message": "no ref nosuchref"})
        return deploy.DeployOutcome("web1", "r1", {"message": "no ref nosuchref", "exit_code": errors.USAGE})

    monkeypatch.setattr(deploy, "_deploy_host", fake)
    with pytest.raises(errors.UsageError):
        deploy.deploy_host(None, HOST, deploy.DeployOptions(), _Printer(len("web1"))("web1"))
    assert capsys.readouterr().out == ""


def test_a_results_warnings_are_said_under_it(capsys):
    """A run that exits 1 says why in plain lines too, not only in --json
    (a trial's rollback printed '= deployed: ... healthy again' and exited 1)."""
    on_event = _Printer(len("web1"))("web1")
    on_event({"kind": "result", "result": "deployed", "exit_code": 1, "message": "restarted bot at abc; healthy again",
              "warnings": ["was unhealthy, restarted: bot is down: its process is gone"]})
    out = capsys.readouterr().out
    assert "= deployed: restarted bot at abc; healthy again" in out
    assert "warning: was unhealthy, restarted: bot is down: its process is gone" in out
