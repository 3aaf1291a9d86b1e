"""#24's leftover: a deploy from a laptop whose hosts.yml differs from the
one `setup` used replaced the host's host.yml whole, so a laptop without
`metrics_dir` or `backup` silently stopped the host's textfile and cut its
backups down to .env and state. The host's own values of those settings
are now kept where the laptop leaves them unset, a value the laptop sets
wins, and the run warns once either way (host/settings.py; docs/hosts.md,
"What a deploy keeps")."""
import json

import pytest
import yaml

from fabops import inventory
from fabops.deploy import host_yml
from fabops.host.settings import installed

BASE = {"connection": "local", "app": {"path": "/srv/app"}, "home": "/srv/home",
        "services": [{"name": "bot", "manager": "process", "command": "true"}]}
REPO = {"url": "sftp:backup@vault:/srv/restic/web1", "password_file": "/srv/home/restic.pw"}


def _yml(**settings) -> str:
    """host.yml as a deploy or setup writes it for host `h`."""
    return host_yml(inventory.from_data({"hosts": {"h": dict(BASE, **settings)}}).hosts["h"])


def _host(text: str):
    return inventory.loads(text, "host.yml").hosts["h"]


def test_what_the_laptop_leaves_unset_is_kept_and_said_once():
    setup = _yml(metrics_dir="/var/lib/node_exporter/textfile",
                 backup={"files": ["data"], "schedule": "15 2 * * *", "repository": REPO})
    text, warnings = installed(setup, _yml(), "h")
    host = _host(text)
    assert host.metrics_dir == "/var/lib/node_exporter/textfile"
    assert host.backup.files == ("data",) and host.backup.schedule == "15 2 * * *"
    assert host.backup.repository is not None and host.backup.repository.url == REPO["url"]
    assert warnings == [
        "host.yml: kept the host's metrics_dir, backup.files, backup.schedule, backup.repository: this deploy's "
        "inventory leaves them unset, and a deploy never drops them; set them in that hosts.yml too, or drop "
        "them with `setup -H h` (docs/hosts.md, \"What a deploy keeps\")"], warnings
    assert "vault" not in " ".join(warnings)  # key names only: a repository URL may hold a password
    # the laptop's own settings are still what the run uses
    laptop = _host(_yml(services=[{"name": "api", "manager": "process", "command": "true"}]))
    assert [s.name for s in _host(installed(setup, host_yml(laptop), "h")[0]).services] == ["api"]


def test_what_the_laptop_sets_wins_and_a_change_setup_acts_on_is_said():
    setup = _yml(metrics_dir="/var/lib/node_exporter/textfile", backup={"files": ["data"]})
    laptop = _yml(metrics_dir="/home/deploy/textfile", backup={"files": ["data", "uploads"]})
    text, warnings = installed(setup, laptop, "h")
    assert text == laptop
    assert _host(text).metrics_dir == "/home/deploy/textfile" and _host(text).backup.files == ("data", "uploads")
    # backup.files is read by each backup: no setup step follows it, nothing to say
    assert warnings == [
        "host.yml: this deploy's inventory changes the host's metrics_dir: `setup -H h` makes what the new "
        "value needs (the metrics directory, cron's backup line, the repository's check) (docs/hosts.md, "
        "\"What a deploy keeps\")"], warnings


@pytest.mark.parametrize("old", [None, "", "not: [yaml", yaml.safe_dump({"hosts": {"other": BASE}})])
def test_nothing_to_compare_with_installs_the_laptops(old):
    laptop = _yml()
    assert installed(old, laptop, "h") == (laptop, [])


def test_the_same_settings_and_an_older_host_yml_say_nothing():
    same = _yml(metrics_dir="/m", backup={"files": ["data"]})
    assert installed(same, same, "h") == (same, [])
    # a host.yml an older fabops wrote, without a backup key: it holds the defaults, nothing to keep
    data = yaml.safe_load(_yml())
    del data["hosts"]["h"]["backup"]
    assert installed(yaml.safe_dump(data), _yml(), "h") == (_yml(), [])


def test_the_sent_settings_wait_for_the_run_to_install_them(tmp_path):
    """local-update reads the sent file and installs nothing itself: the
    run starts with the host's installed host.yml and installs the merged
    text under its lock once it trusts the target (host/settings.Sent;
    docs/security.md, "Verified commits")."""
    from fabops.tasks.update import _with_config

    home = tmp_path / "home"
    home.mkdir()
    mine = dict(BASE, home=str(home))
    setup = host_yml(inventory.from_data({"hosts": {"h": dict(mine, metrics_dir=str(tmp_path / "m"))}}).hosts["h"])
    (home / "host.yml").write_text(setup)
    config = tmp_path / "run.host.yml"
    laptop = dict(mine, hooks={"on_failure": "touch marker"})
    config.write_text(host_yml(inventory.from_data({"hosts": {"h": laptop}}).hosts["h"]))
    host = _host(config.read_text())
    current, sent = _with_config(host, str(config))
    assert current == _host(setup) and not current.hooks  # the installed settings, until the run trusts the target
    assert sent.path == str(home / "host.yml") and "on_failure" in sent.host.hooks
    assert sent.host.metrics_dir == str(tmp_path / "m") and len(sent.warnings) == 1, sent.warnings
    assert "metrics_dir" in sent.warnings[0] and _host(sent.text) == sent.host
    assert (home / "host.yml").read_text() == setup  # nothing installed yet
    assert _with_config(host, None) == (host, None)  # cron's own run: no config to install
    # no host.yml for this home yet (or another home's): the sent settings are all there is
    (home / "host.yml").unlink()
    assert _with_config(host, str(config))[0] == host


def test_a_deploy_run_says_the_kept_settings_in_its_result(sandbox, tmp_path):
    """A real host-side run, as a deploy starts it (`--install-config`):
    the warning is in its result and history, the kept metrics_dir is in
    effect (the run writes its textfile there), and it exits 1 as a run
    with a warning does (docs/errors.md)."""
    from tests.conftest import run_cli

    metrics = tmp_path / "textfile"
    metrics.mkdir()
    laptop = inventory.load(str(sandbox.inventory)).hosts["local"]
    setup = host_yml(inventory.from_data({"hosts": {"local": dict(
        yaml.safe_load(sandbox.inventory.read_text())["hosts"]["local"], metrics_dir=str(metrics))}}).hosts["local"])
    sandbox.home.mkdir(parents=True, exist_ok=True)
    (sandbox.home / "host.yml").write_text(setup)
    config = tmp_path / "run.host.yml"
    config.write_text(host_yml(laptop))
    argv = ["local-update", "-i", str(config), "-H", "local", "--install-config", str(config), "--json",
            "--trigger", "deploy", "--actor", "alice@laptop"]
    dry = run_cli(*argv, "--dry-run")
    said = json.loads(dry.stdout)["hosts"]["local"]["warnings"]
    assert [w for w in said if w.startswith("host.yml: kept the host's metrics_dir:")], (said, dry.stderr)
    assert (sandbox.home / "host.yml").read_text() == setup
    r = run_cli(*argv)
    res = json.loads(r.stdout)["hosts"]["local"]
    assert res["result"] == "deployed" and r.returncode == 1, (r.stdout, r.stderr)
    assert res["warnings"] == said, res
    assert inventory.load(str(sandbox.home / "host.yml")).hosts["local"].metrics_dir == str(metrics)
    assert (metrics / "fabops-local.prom").exists(), sorted(p.name for p in metrics.iterdir())
    assert sandbox.history()[-1]["warnings"] == said


@pytest.mark.parametrize("width", (80, 200))
def test_the_deploys_progress_says_the_kept_settings_once(width, capsys, monkeypatch):
    """How a deploy's output says it: under the run's result line, once,
    wrapped at spaces under its text (the host's warnings, tasks/deploy.py)."""
    from fabops.tasks.deploy import _Printer
    from tests.test_golden import check, render

    setup = _yml(metrics_dir="/var/lib/node_exporter/textfile", backup={"files": ["data"], "repository": REPO})
    said = installed(setup, _yml(), "h")[1]
    event = {"kind": "result", "result": "deployed", "exit_code": 1, "warnings": said,
             "message": "deployed 9b8c7d6e5f -> 0a1b2c3d4e"}
    text = render(capsys, monkeypatch, width, lambda: _Printer(len("web1"))("web1")(event))
    assert " ".join(text.split()).count("kept the host's metrics_dir, backup.files, backup.repository") == 1, text
    check("deploy-kept-settings", width, text)
