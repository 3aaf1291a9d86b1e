"""A run's id names files under the host's runs/ (runs/<id>.jsonl, .out,
.host.yml): `local-update --run-id ../x` wrote <home>/x.jsonl, outside it.
Every flag that takes an id refuses anything but one (exit 64, one line),
by one rule (paths.check_run_id), on cron's fast path and through Invoke."""
from __future__ import annotations

import pytest

from tests.conftest import run_cli

BAD = ["../x", "a/b", "..", ".x", "x y", "x/../../y"]


def _local_host(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(f"hosts:\n  box:\n    connection: local\n    home: {tmp_path / 'home'}\n"
                   f"    app: {{path: {tmp_path / 'app'}}}\n"
                   "    services:\n      - {name: web, manager: process, command: 'sleep 600'}\n")
    return inv


@pytest.mark.parametrize("fastpath", ["1", "0"])
@pytest.mark.parametrize("bad", BAD)
def test_local_update_takes_a_run_id_only(tmp_path, bad, fastpath):
    inv = _local_host(tmp_path)
    r = run_cli("local-update", "-i", str(inv), "-H", "box", f"--run-id={bad}", env={"FABOPS_FASTPATH": fastpath})
    assert (r.returncode, r.stdout) == (64, ""), (r.returncode, r.stdout, r.stderr)
    assert r.stderr == f"fabops: --run-id {bad}: not a run id (one reads like 20261206T130834-a26a0a: " \
                       "letters, digits, '-', '_', no '/')\n", r.stderr
    # refused before anything ran: no home, no file beside runs/
    assert not (tmp_path / "home").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["hosts.yml"]


@pytest.mark.parametrize("good", ["20261206T130834-a26a0a", "dep1", "a.b", "A_1-2"])
def test_a_run_id_is_a_file_name_under_runs(good):
    from fabops.paths import HostPaths, check_run_id

    assert check_run_id(good, "--run-id") == good
    assert HostPaths("/h").run_events(good) == f"/h/runs/{good}.jsonl"


@pytest.mark.parametrize("bad", BAD + [""])
def test_no_run_file_is_named_outside_runs(bad):
    """The guard under every run file's name (HostPaths.run_file), for a
    caller that did not check its flag first."""
    from fabops.errors import UsageError
    from fabops.paths import HostPaths

    with pytest.raises(UsageError, match="not a run id"):
        HostPaths("/h").run_file(bad, "out")


def test_deploy_attach_and_local_update_run_id_share_the_rule(monkeypatch):
    """`deploy --attach` refuses by the same function (a second copy of the
    pattern in tasks/deploy.py could drift)."""
    from fabops import paths
    from fabops.errors import UsageError
    from fabops.tasks import deploy

    seen = []

    def spy(value, flag="run id"):
        seen.append((value, flag))
        raise UsageError("refused")

    monkeypatch.setattr(paths, "check_run_id", spy)
    with pytest.raises(UsageError):
        deploy.deploy.body(None, hosts="find-to-do", attach="../x", inventory="tests/fixtures/golden/hosts.yml")
    assert seen == [("../x", "--attach")]
