"""The host's metrics in Prometheus' text format (fabops/host/prom.py,
docs/metrics.md): names, HELP and TYPE lines, label escaping, counters
kept in state.json across runs, the textfile written atomically after a
real run, and a write failure that never fails the run."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fabops import __version__, inventory
from fabops.host import prom
from fabops.paths import HostPaths
from fabops.shortsha import short_sha
from tests.conftest import require, run_cli

SHA = "a" * 40
# A sample line: name, {labels}, value (no timestamp: the textfile collector refuses one)
SAMPLE = re.compile(r'^([a-z_]+)\{((?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*)\} (-?[0-9.e+]+)$')


def host(tmp_path: Path, metrics_dir=None):
    entry = {"connection": "local", "app": {"path": str(tmp_path / "app")}, "home": str(tmp_path / "home")}
    if metrics_dir:
        entry["metrics_dir"] = str(metrics_dir)
    return inventory.loads(yaml.safe_dump({"hosts": {"web": entry}})).hosts["web"]


def parsed(text: str) -> dict:
    """{name: {"help", "type", "samples": [(labels text, value)]}}, every
    line checked against the format's grammar."""
    out: dict = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, words = line[7:].partition(" ")
            out.setdefault(name, {"samples": []})["help"] = words
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("gauge", "counter"), line
            out[name]["type"] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            out[m.group(1)]["samples"].append((m.group(2), float(m.group(3))))
    return out


def test_names_follow_prometheus_conventions(tmp_path):
    kept: dict = {}
    prom.counted(kept, "cron", "noop", 0, 0.25, 1000.0)
    prom.counted(kept, "deploy", "rolled_back", 2, 31.5, 1001.0)
    kept["services"] = {"bot": {"up": True, "seconds": 0.012, "http_status": 200, "at": 1001.0}}
    state = {"deployed": SHA, "deployed_at": 900.0, "bad": {"b" * 40: {}}, "restarts": [999.0], prom.KEY: kept}
    families = parsed(prom.exposition(host(tmp_path), state, now=1001.0))
    for name, family in families.items():
        assert name.startswith("fabops_"), name
        assert family["help"] and family["samples"], name
        assert (family["type"] == "counter") == name.endswith("_total"), name
        assert not name.endswith("_info") or family["samples"][0][1] == 1
        for labels, _ in family["samples"]:
            assert labels.startswith('fabops_host="web"'), (name, labels)
    assert families["fabops_runs_total"]["samples"] == [
        ('fabops_host="web",trigger="cron",result="noop"', 1), ('fabops_host="web",trigger="deploy",result="rolled_back"', 1)]
    assert families["fabops_last_run_duration_seconds"]["samples"][1] == ('fabops_host="web",trigger="deploy"', 31.5)
    assert families["fabops_update_check_success_timestamp_seconds"]["samples"] == [('fabops_host="web"', 1000)]
    assert families["fabops_bad_targets"]["samples"] == [('fabops_host="web"', 1)]
    assert families["fabops_restarts_in_window"]["samples"] == [('fabops_host="web"', 1)]
    assert families["fabops_service_http_status"]["samples"] == [('fabops_host="web",service="bot"', 200)]
    assert families["fabops_behind_origin_since_timestamp_seconds"]["samples"] == [('fabops_host="web"', 0)]


def test_label_values_are_escaped_and_made_printable(tmp_path):
    subject = 'say "hi" \\ to\nall \x1b[2Jnow\x07'
    state = {"deployed": SHA, prom.KEY: {"subject": [SHA, subject]}}
    text = prom.exposition(host(tmp_path), state, now=1.0)
    line = next(x for x in text.splitlines() if x.startswith("fabops_deployed_commit_info"))
    assert line == ('fabops_deployed_commit_info{fabops_host="web",commit="%s",'
                    'subject="say \\"hi\\" \\\\ to\\nall now\ufffd"} 1' % short_sha(SHA))
    assert text.replace("\n", "").isprintable()  # no escape, BEL or raw line break reaches a terminal
    # a subject kept for another commit is not this one's
    state[prom.KEY]["subject"] = ["c" * 40, "older"]
    assert 'subject=""' in prom.exposition(host(tmp_path), state, now=1.0)


def test_help_text_backslashes_escaped():
    text = prom.render([("fabops_x", "gauge", "a \\ b", [((), 1.5)])])
    assert text == "# HELP fabops_x a \\\\ b\n# TYPE fabops_x gauge\nfabops_x{} 1.5\n"
    assert prom.render([("fabops_y", "gauge", "none", [])]) == ""


def test_counters_survive_in_state_json(tmp_path):
    """Each run is its own process: the counts live in state.json, merged
    under its lock with what other writers keep there."""
    h = host(tmp_path)
    paths = HostPaths.for_home(h.home)
    for result in ("noop", "noop", "deployed"):
        prom.run_done(h, "cron", result, 0, 0.1, to=SHA, subject="ship it")
    prom.health_done(h, "down", 2, 0.5, [{"service": "bot", "ok": False, "seconds": 0.2, "http_status": 503}])
    state = json.loads(Path(paths.state).read_text())
    assert state[prom.KEY]["runs"] == {"cron noop": 2, "cron deployed": 1, "health down": 1}
    assert state[prom.KEY]["subject"] == [SHA, "ship it"]
    assert state[prom.KEY]["services"]["bot"]["up"] is False


def test_textfile_written_atomically_0644(tmp_path):
    d = tmp_path / "textfile"
    d.mkdir()
    h = host(tmp_path, d)
    assert prom.run_done(h, "cron", "noop", 0, 0.1) is None
    written = d / "fabops-web.prom"
    assert oct(written.stat().st_mode & 0o777) == "0o644"
    assert "fabops_runs_total" in written.read_text()
    assert [p.name for p in d.iterdir()] == ["fabops-web.prom"]  # no temp file left


def test_a_write_failure_is_said_once_and_never_raises(tmp_path):
    h = host(tmp_path, tmp_path / "missing")
    log = Path(HostPaths.for_home(h.home).update_log)
    for _ in range(2):
        failed = prom.run_done(h, "cron", "noop", 0, 0.1)
        assert failed and "is not a directory" in failed
    assert log.read_text().count("warning: metrics:") == 1
    (tmp_path / "missing").mkdir()
    assert prom.run_done(h, "cron", "noop", 0, 0.1) is None
    # the failure it recovers from said once, without its prefix again (#27's trial)
    assert f"metrics: written again ({tmp_path / 'missing'} is not a directory" in log.read_text(), log.read_text()
    assert "(metrics:" not in log.read_text()


def test_metrics_dir_is_a_checked_host_path(tmp_path):
    with pytest.raises(Exception) as err:
        host(tmp_path, "/var/lib/node exporter;rm")
    assert "metrics_dir" in str(err.value)


# ------------------------------------------------------------ a real run

def promtool_check(text: str) -> None:
    """`promtool check metrics` on the exposition. Without promtool the
    test is skipped, never passed silently; under FABOPS_REQUIRE_ALL=1 (CI:
    .ci/run installs Debian's prometheus package) it fails. Call it last:
    a skip ends the test."""
    require(shutil.which("promtool") is not None, "promtool is not installed (apt-get install prometheus)")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def with_textfile(sandbox, tmp_path: Path, **more) -> Path:
    """A new directory as the sandbox host's metrics_dir (with `more` keys
    of its hosts.yml entry): the textfile's directory."""
    d = tmp_path / "textfile"
    d.mkdir()
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"].update(metrics_dir=str(d), **more)
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return d


def test_sandbox_deploy_writes_the_textfile(sandbox, tmp_path):
    d = with_textfile(sandbox, tmp_path)
    rc, result = sandbox.result()
    assert (rc, result["result"]) == (0, "deployed"), result
    rc, again = sandbox.result()
    assert (rc, again["result"]) == (0, "noop"), again
    text = (d / "fabops-local.prom").read_text()
    families = parsed(text)
    subject = sandbox.history()[-1]["subject"]
    assert families["fabops_deployed_commit_info"]["samples"] == [
        (f'fabops_host="local",commit="{short_sha(sandbox.head())}",subject="{prom.label_value(subject)}"', 1)]
    assert sorted(families["fabops_runs_total"]["samples"]) == [
        ('fabops_host="local",trigger="cron",result="deployed"', 1),
        ('fabops_host="local",trigger="cron",result="noop"', 1)]
    # `fabops metrics` reads the same state (one command through the host's
    # Target) and prints the same exposition
    r = run_cli("metrics", "-i", str(sandbox.inventory))
    assert (r.returncode, r.stdout, r.stderr) == (0, text, "")
    # cron's health line on the host: each service as its check found it
    r = run_cli("health", "--fix", "--quiet", "-i", str(sandbox.inventory))
    assert r.returncode == 0, (r.stdout, r.stderr)
    families = parsed((d / "fabops-local.prom").read_text())
    assert families["fabops_service_up"]["samples"] == [('fabops_host="local",service="bot"', 1)]
    assert families["fabops_service_http_status"]["samples"] == [('fabops_host="local",service="bot"', 200)]
    assert ('fabops_host="local",trigger="health",result="ok"', 1) in families["fabops_runs_total"]["samples"]
    promtool_check(text)


def test_metrics_of_several_hosts_name_each_family_once(tmp_path):
    one, two = host(tmp_path), inventory.loads(yaml.safe_dump({"hosts": {"db": {
        "connection": "local", "app": {"path": str(tmp_path / "app")}}}})).hosts["db"]
    text = prom.render(prom.merged([prom.families(one, {}, 1.0), prom.families(two, {}, 1.0, build=("0.0.9", "3.9"))]))
    mine = "%d.%d" % sys.version_info[:2]  # this process's: a local host runs this very fabops
    assert text.count("# TYPE fabops_build_info ") == 1
    assert parsed(text)["fabops_build_info"]["samples"] == [
        (f'fabops_host="web",version="{__version__}",python="{mine}"', 1),
        ('fabops_host="db",version="0.0.9",python="3.9"', 1)]
    promtool_check(text)


def test_setup_makes_the_metrics_dir_and_follows_no_link(sandbox, tmp_path):
    """setup's metrics-dir item on the sandbox host (its directory is the
    deploy user's own: no sudo): --check says it would, the run makes it
    0755, the next finds it; a link there is left alone with a warning."""
    from invoke import Context

    from fabops import setup
    from fabops.target import Target

    d = tmp_path / "node-exporter" / "textfile"
    data = yaml.safe_load(sandbox.inventory.read_text())
    data["hosts"]["local"]["metrics_dir"] = str(d)
    sandbox.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    h = inventory.load(str(sandbox.inventory)).hosts["local"]

    def item(check: bool):
        run = setup._Setup(Target(Context(), h.name, h.home), h, check=check, yes=False, offline=True,
                           replace_units=False, splay=30)
        return [(r.name, r.status, r.message) for r in setup._metrics_dir(run)]

    user = h.user or "root"
    assert item(True) == [("metrics dir", "would change", f"create {d} (0755, {user})")] and not d.exists()
    assert item(False) == [("metrics dir", "changed", f"created {d} (0755, {user})")]
    assert d.is_dir() and oct(d.stat().st_mode & 0o777) == "0o755"
    assert item(False) == [("metrics dir", "ok", str(d))]
    d.rmdir()
    d.symlink_to(tmp_path)
    [(_, status, message)] = item(False)
    assert status == "warning" and "symbolic link" in message and d.is_symlink()


def test_a_backup_run_writes_its_metrics(sandbox, tmp_path):
    """cron's backup line (the fast path, host/backup.result) counts its
    run and keeps its snapshot's time and size for the textfile."""
    d = with_textfile(sandbox, tmp_path, backup={"files": ["app.py"]})
    r = run_cli("backup", "-i", str(sandbox.inventory))
    assert r.returncode == 0, (r.stdout, r.stderr)
    text = (d / "fabops-local.prom").read_text()
    families = parsed(text)
    assert families["fabops_runs_total"]["samples"] == [('fabops_host="local",trigger="backup",result="backed_up"', 1)]
    [(_, size)] = families["fabops_backup_size_bytes"]["samples"]
    assert size >= (sandbox.app / "app.py").stat().st_size
    assert families["fabops_backup_success_timestamp_seconds"]["samples"]
    promtool_check(text)


def test_a_clean_on_the_host_adds_what_it_freed(sandbox, tmp_path):
    """`fabops clean` on the host itself (cron's line): its run counted and
    the bytes it freed added up over runs; its dry run writes nothing."""
    junk = tmp_path / "recordings"
    junk.mkdir()
    d = with_textfile(sandbox, tmp_path, cleanup=[{"path": str(junk), "glob": "*.pcm", "older_than": "1m"}])

    def old_files(n: int) -> None:
        for i in range(n):
            f = junk / f"{n}-{i}.pcm"
            f.write_bytes(b"x" * 1000)
            os.utime(f, (1, 1))

    old_files(2)
    assert run_cli("clean", "-i", str(sandbox.inventory), "--dry-run").returncode == 0
    assert not (d / "fabops-local.prom").exists()
    assert run_cli("clean", "-i", str(sandbox.inventory)).returncode == 0
    old_files(3)
    assert run_cli("clean", "-i", str(sandbox.inventory)).returncode == 0
    families = parsed((d / "fabops-local.prom").read_text())
    assert families["fabops_cleanup_freed_bytes_total"]["samples"] == [('fabops_host="local"', 5000)]
    assert families["fabops_cleanup_deleted_files_total"]["samples"] == [('fabops_host="local"', 5)]
    assert families["fabops_runs_total"]["samples"] == [('fabops_host="local",trigger="clean",result="cleaned"', 2)]


def test_metrics_of_a_host_it_cannot_reach_exit_3(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"nope": {"address": "127.0.0.1", "port": 1, "user": "nobody",
                                                      "app": {"path": "/srv/app"}}}}))
    r = run_cli("metrics", "-i", str(inv), "--connect-timeout", "2")
    assert (r.returncode, r.stdout) == (3, ""), r
    assert r.stderr.startswith("fabops: nope: cannot connect to nobody@127.0.0.1:1"), r.stderr


def test_a_run_counted_in_its_own_save_writes_the_textfile_alone(tmp_path):
    """The pipeline's settle carries the count (run_counted) in the save it
    makes anyway; after it, run_done(saved=...) writes the textfile and
    never state.json again (a cron poll's second fsynced write)."""
    from fabops.host.state import merge_state_file

    d = tmp_path / "textfile"
    d.mkdir()
    h = host(tmp_path, d)
    state_path = HostPaths.for_home(h.home).state
    saved = merge_state_file(state_path, {"last_result": "noop"}, fold=prom.run_counted("cron", "noop", 0, 0.2))[1]
    before = os.stat(state_path).st_mtime_ns, Path(state_path).read_text()
    assert prom.run_done(h, "cron", "noop", 0, 0.2, saved=saved) is None
    assert (os.stat(state_path).st_mtime_ns, Path(state_path).read_text()) == before
    assert 'fabops_runs_total{fabops_host="web",trigger="cron",result="noop"} 1' in (d / "fabops-web.prom").read_text()


def test_a_deploy_that_reports_the_run_it_waited_for_counts_nothing(tmp_path):
    """#27's trial: a second deploy of the same target waited for the
    first one's watch and took its result (pipeline._reported); it counted
    itself too, so runs_total went up by two for one history line and the
    last run's duration and exit code were the wait's. The run that
    changed the host counts; the one that reported it writes nothing."""
    from invoke import Context

    from fabops.host.pipeline import Pipeline, UpdateOptions

    d = tmp_path / "textfile"
    d.mkdir()
    h = host(tmp_path, d)
    paths = HostPaths.for_home(h.home)
    os.makedirs(os.path.dirname(paths.history), exist_ok=True)
    Path(paths.history).write_text(json.dumps(
        {"run_id": "r1", "trigger": "deploy", "result": "deployed", "exit_code": 1, "to": SHA}) + "\n")
    pipe = Pipeline(Context(), h, UpdateOptions(trigger="deploy"))
    assert pipe._reported({"run_id": "r1", "trigger": "deploy", "actor": "ann"})
    assert pipe.res.result == "deployed"
    pipe._sample()
    assert not os.path.exists(paths.state) or prom.KEY not in json.loads(Path(paths.state).read_text())
    assert not (d / "fabops-web.prom").exists()


def test_a_hand_edited_metrics_key_never_fails_the_run(tmp_path):
    """#27's review: a list where state.json's `metrics` keeps a number
    raised TypeError out of the run's own state save (run_counted's fold)
    and out of the rendering, so a run that succeeded exited 70. Now the
    save goes through, the malformed values are left out of the textfile
    (a counter counts again from 0) and the update log says so once."""
    from fabops.host.record import update_log_path
    from fabops.host.state import merge_state_file

    d = tmp_path / "textfile"
    d.mkdir()
    h = host(tmp_path, d)
    paths = HostPaths.for_home(h.home)
    os.makedirs(h.home, exist_ok=True)
    Path(paths.state).write_text(json.dumps({prom.KEY: {
        "runs": {"cron noop": [3]}, "last": {"cron": {"at": [1], "seconds": "x", "code": 0}},
        "services": {"bot": {"up": True, "seconds": [0.1], "at": 5.0}}}}))
    saved = merge_state_file(paths.state, {"last_result": "noop"}, fold=prom.run_counted("cron", "noop", 0, 0.2))[1]
    assert saved["last_result"] == "noop" and saved[prom.KEY]["runs"]["cron noop"] == 1
    saved[prom.KEY]["last"]["cron"]["at"] = [1]  # a value rendering meets
    failed = prom.run_done(h, "cron", "noop", 0, 0.2, saved=saved)
    assert failed and "not numbers" in failed and "cron noop" in failed, failed
    families = parsed((d / "fabops-web.prom").read_text())
    assert families["fabops_runs_total"]["samples"] == [('fabops_host="web",trigger="cron",result="noop"', 1)]
    assert families["fabops_service_check_duration_seconds"]["samples"] == []
    # a set of runs that raise: a broken fold and a state.json that is no object
    assert prom.clean_done(h, "many", 0) is not None  # a TypeError inside the change, caught
    log = Path(update_log_path(h, paths)).read_text()
    assert log.count("warning: metrics:") >= 1, log


def test_the_textfile_is_written_under_the_state_lock(tmp_path, monkeypatch):
    """#27's review: written after state.json's lock was let go, two runs
    (cron's update and health in the same minute) could write the textfile
    out of order, and fabops_runs_total went backwards (a counter reset to
    Prometheus). Now each run writes it inside its fold, under the flock:
    for a pipeline run's own save (run_counted with its host) and for every
    other run (after)."""
    import fcntl

    from fabops.host.state import merge_state_file

    d = tmp_path / "textfile"
    d.mkdir()
    h = host(tmp_path, d)
    paths = HostPaths.for_home(h.home)
    locked = []
    real = prom.publish

    def publish(host_, text):
        fd = os.open(h.home, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked.append(False)
        except BlockingIOError:
            locked.append(True)
        finally:
            os.close(fd)
        return real(host_, text)

    monkeypatch.setattr(prom, "publish", publish)
    out: dict = {}
    saved = merge_state_file(paths.state, {}, fold=prom.run_counted("cron", "noop", 0, 0.2, host=h, out=out))[1]
    assert prom.run_done(h, "cron", "noop", 0, 0.2, saved=saved, published=out) is None
    prom.health_done(h, "ok", 0, 0.1, [])
    assert locked == [True, True]
    assert 'trigger="health",result="ok"} 1' in (d / "fabops-web.prom").read_text()


def test_promtool_missing_fails_under_require_all(monkeypatch):
    """#27's review: promtool_check returned quietly without promtool, so
    CI passed without ever checking the format; under FABOPS_REQUIRE_ALL=1
    a missing promtool fails the test."""
    from tests import conftest

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(conftest, "REQUIRE_ALL", True)
    with pytest.raises(pytest.fail.Exception, match="promtool"):
        promtool_check("")
    monkeypatch.setattr(conftest, "REQUIRE_ALL", False)
    with pytest.raises(pytest.skip.Exception):
        promtool_check("")


def test_the_cron_stalled_example_alerts_on_the_last_run():
    """#27's review: docs/metrics.md's "cron stalled" example used the last
    converged update check, so it fired while updates failed and on
    weekday-only schedules; a stalled cron is one whose runs stop. Every
    metric an example names is one this module writes."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    examples = text.split("## Example queries", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    lines = examples.splitlines()
    stalled = lines[[i for i, line in enumerate(lines) if line.startswith("# cron stalled")][0] + 1]
    assert 'fabops_last_run_timestamp_seconds{trigger="cron"}' in stalled, stalled
    kept: dict = {}
    prom.counted(kept, "cron", "noop", 0, 0.1, 1.0)
    written = set(parsed(prom.render(prom.families(host(Path("/nonexistent")), {prom.KEY: kept}, 1.0))))
    named = set(re.findall(r"\bfabops_[a-z_]+", examples))
    assert named <= written | {"fabops_service_up"}, named - written


def test_build_info_names_python_as_the_install_marker_does(tmp_path):
    """#27's trial: the textfile said python="3.11.7" (this process) where
    `fabops metrics` said "3.11" (the install marker): two series. Both are
    major.minor now, and a marker that kept the full version reads the same."""
    from fabops.prometheus import _build

    one = host(tmp_path)
    label = lambda build: parsed(prom.render(prom.families(one, {}, 1.0, build=build)))[
        "fabops_build_info"]["samples"][0][0]
    mine = "%d.%d" % sys.version_info[:2]
    assert label(None) == f'fabops_host="web",version="{__version__}",python="{mine}"'
    assert label(_build({"version": __version__, "python": mine}, True)) == label(None)
    assert label(_build({"version": __version__, "python": mine + ".7"}, True)) == label(None)


def test_docs_say_how_stale_the_textfile_is_after_a_laptop_change():
    """#27's trial: `inv unpin` left fabops_pinned 1 in the textfile while
    `inv metrics` said 0. unpin and reset write state.json agentless (the
    host's python3, not its fabops), so they cannot render the file: the
    docs say so, and for how long it stays stale."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    part = text.split("### How stale the textfile can be", 1)[1].split("\n## ", 1)[0]
    for words in ("`unpin`", "`reset`", "`fabops_pinned 1`", "`schedule.update`", "every 5 minutes",
                  "`inv metrics` reads state.json"):
        assert words in " ".join(part.split()), words
    from fabops.validate import DEFAULT_SCHEDULE

    assert DEFAULT_SCHEDULE["update"] == "*/5 * * * *" and DEFAULT_SCHEDULE["health"] == "*/10 * * * *"
