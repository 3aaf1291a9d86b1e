"""#29, the trust boundary: a deploy's sent settings (its runs/<id>.host.yml)
are installed as host.yml only under the run's lock, and on a host that
requires signed commits only once the planner trusts the target
(host/plan._trusted; docs/security.md, "Verified commits"). Until then,
and for good when the target is held or refused, the run acts with the
host's installed host.yml: its own hooks, on_failure and heartbeat, never
the ones a push that edits hosts.yml brings."""
import pytest
import yaml

from fabops import inventory
from fabops.host.dry_run import actions
from fabops.host.plan import Facts, Health, Need, Opts, Plan, Signed, plan
from fabops.host.settings import moves
from fabops.host.state import State

pytestmark = pytest.mark.unit

A, B = "a" * 40, "b" * 40
FILE = "/etc/fabops/app/allowed_signers"
HEALTHY = (Health("api", True, "api is up"),)


def host(**more) -> inventory.Host:
    entry = {"connection": "local", "app": {"path": "/srv/app"}, "home": "/srv/home",
             "services": [{"name": "api", "manager": "process", "command": "python3 api.py"}], **more}
    return inventory.loads(yaml.safe_dump({"hosts": {"h": entry}}), "h.yml").hosts["h"]


INSTALLED = host(hooks={"on_failure": "page-the-team"})


def decide(sent="pending", signed=None, trigger="deploy", ref=None, allow=False, signers=FILE, origin=B,
           deployed=A, moved=(), source=None):
    facts = Facts(origin=origin, head=A, ref_commit=B if ref else None, health=HEALTHY, problems=(), changed=(),
                  signers=signers, signed=signed, sent=sent, sent_moves=moved)
    return plan(INSTALLED, State(deployed=deployed), facts,
                Opts(trigger=trigger, ref=ref, allow_unverified=allow, settings_from=source))


def test_a_host_that_requires_no_signed_commits_takes_the_sent_settings_first():
    need = decide(signers="")
    assert isinstance(need, Need) and (need.fact, need.target) == ("settings", B)


def test_the_target_is_verified_before_the_sent_settings_are_taken():
    need = decide()
    assert isinstance(need, Need) and (need.fact, need.target) == ("verify", B)
    need = decide(signed=Signed(B, True, "signed for alice@example"))
    assert isinstance(need, Need) and need.fact == "settings"


@pytest.mark.parametrize("why", ["deployed", "rollback", "allow_unverified"])
def test_a_target_trusted_without_a_signature_takes_them(why):
    unsigned = Signed(B, False, "no signature")
    need = {"deployed": lambda: decide(origin=A),  # the deployed commit runs already
            "rollback": lambda: decide(trigger="rollback", deployed=B, signed=None),  # its own pick: a commit it ran
            "allow_unverified": lambda: decide(signed=unsigned, ref=B, allow=True)}[why]()
    assert isinstance(need, Need) and need.fact == "settings", need


def test_a_refused_target_keeps_the_installed_settings_and_says_so_once():
    p = decide(signed=Signed(B, False, "no signature"))
    assert isinstance(p, Plan) and (p.kind, p.result) == ("abort", "aborted"), p
    # the run's own hooks are the installed host.yml's: its on_failure, not the sent one
    assert p.hooks == ("on_failure",)
    line = ("host.yml: this deploy's settings were not installed: bbbbbbbbbb is not verified; the run used the "
            "host's own host.yml (docs/security.md, \"Verified commits\")")
    assert [w for w in p.warnings if w.startswith("host.yml:")] == [line], p.warnings
    # its dry run's plan says the same line (its warnings), and would install nothing
    assert not [w for w in actions(INSTALLED, p, "deploy") if "host.yml" in w.target]


def test_a_held_target_keeps_them_too():
    p = decide(trigger="manual", signed=Signed(B, False, "no signature"))
    assert (p.kind, p.result) == ("hold", "skipped_unverified") and "bbbbbbbbbb is not verified" in p.warnings[-1]


def test_taken_settings_plan_as_before_and_say_nothing_more():
    p = decide(sent="taken", signed=Signed(B, True, "signed for alice@example"))
    assert (p.kind, p.target) == ("deploy", B) and not [w for w in p.warnings if w.startswith("host.yml:")], p
    assert decide(sent="", signed=Signed(B, True, "signed for alice@example")) == p


def test_a_run_stopped_before_its_target_was_verified_says_why_they_wait():
    p = plan(INSTALLED, State(deployed=A), Facts(origin=None, head=A, signers=FILE, sent="pending"),
             Opts(trigger="deploy"))
    assert p.kind == "abort" and "the run stopped before its target was verified" in p.warnings[-1], p


def test_settings_that_move_the_app_wait_for_setup():
    p = decide(sent="moved", moved=("app.branch",), signed=Signed(B, True, "signed"))
    assert (p.kind, p.target) == ("deploy", B), p  # the installed settings deploy the signed target
    assert "they change app.branch, which a host that requires signed commits takes from `setup` only" \
        in p.warnings[-1], p.warnings


def test_moves_names_what_says_where_the_app_and_home_are():
    assert moves(INSTALLED, host(hooks={"on_failure": "x"}, heartbeat={"url": "https://hc.example/ping/1"})) == ()
    assert moves(INSTALLED, host(app={"path": "/srv/app/"})) == ()  # the same directory
    assert moves(INSTALLED, host(app={"path": "/srv/other", "branch": "evil"}, home="/tmp/h")) == (
        "home", "app.path", "app.branch")
    assert moves(INSTALLED, host(sandbox=True)) == ("sandbox",)


def _pipeline(tmp_path):
    """A deploy's Pipeline on a tmp home, the host's own settings in effect
    and `sent` ones (a new on_failure) waiting (nothing is run)."""
    from fabops.connection import local_context
    from fabops.deploy import host_yml
    from fabops.host.pipeline import Pipeline, UpdateOptions
    from fabops.host.settings import Sent

    home = tmp_path / "home"
    home.mkdir()
    own, sent = host(home=str(home), hooks={"on_failure": "page"}), host(home=str(home), hooks={"on_failure": "x"})
    (home / "host.yml").write_text(host_yml(own))
    p = Pipeline(local_context(own), own, UpdateOptions(trigger="deploy"),
                 sent=Sent(host_yml(sent), str(home / "host.yml"), sent))
    return p, home, own, sent


def test_a_deploy_that_reports_the_run_it_waited_for_installs_once_that_deployed_its_target(tmp_path):
    """A CI deploy that meets cron's run of its very commit reports that
    run's result (Pipeline._reported): its target is then the deployed
    commit, which the planner trusts, so its settings are installed."""
    p, home, own, sent = _pipeline(tmp_path)
    p.res.result, p.res.to = "deployed", B
    p._settings_reported()
    assert p.host == sent and (home / "host.yml").read_text() == p.sent.text and not p.res.warnings


@pytest.mark.parametrize("how", ["rolled_back", "superseded"])
def test_one_that_did_not_deploy_it_installs_nothing_and_says_so(tmp_path, how):
    p, home, own, sent = _pipeline(tmp_path)
    before = (home / "host.yml").read_text()
    if how == "superseded":
        p._settings_not_taken("a rollback, reset or restart ended the watch this deploy waited for")
    else:
        p.res.result, p.res.to = how, B
        p._settings_reported()
    assert p.host == own and (home / "host.yml").read_text() == before
    (line,) = p.res.warnings
    assert line.startswith("host.yml: this deploy's settings were not installed: ") and line.endswith(
        "the run used the host's own host.yml (docs/security.md, \"Verified commits\")"), line


@pytest.mark.parametrize("width", (80, 200))
def test_the_deploys_output_says_the_settings_were_not_installed_once(width, capsys, monkeypatch):
    """How a refused deploy's output says it, under its result line, once,
    wrapped at spaces (the host's warnings, tasks/deploy.py)."""
    from fabops.host.plan import not_installed
    from fabops.tasks.deploy import _Printer
    from tests.test_golden import check, render

    line = not_installed(Facts(origin=B, head=A, signed=Signed(B, False, "no signature"), sent="pending"), B)
    event = {"kind": "result", "result": "aborted", "exit_code": 2, "warnings": [line],
             "message": "bbbbbbbbbb is not signed by an allowed key (no signature); only `--ref "
                        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb --allow-unverified` deploys it"}
    text = render(capsys, monkeypatch, width, lambda: _Printer(len("web1"))("web1")(event))
    assert " ".join(text.split()).count("this deploy's settings were not installed") == 1, text
    check("deploy-settings-not-installed", width, text)


def test_a_deploy_that_meets_the_lock_installs_nothing_meanwhile(sandbox, tmp_path):
    """A host that requires no signed commits takes the sent settings as
    before, but under the lock: a deploy that meets a run mid-change and
    exits 4 (locked) has not changed host.yml; the next one installs them
    and acts with them in the same run (its new after_deploy runs)."""
    import json

    from fabops.deploy import host_yml
    from fabops.host.lock import HostLock
    from fabops.paths import HostPaths
    from tests.conftest import run_cli

    box = sandbox
    code, res = box.result()
    assert (code, res["result"]) == (0, "deployed"), res
    laptop = inventory.load(str(box.inventory)).hosts["local"]
    installed = host_yml(laptop)
    (box.home / "host.yml").write_text(installed)
    smoke = tmp_path / "smoke"
    data = yaml.safe_load(box.inventory.read_text())
    data["hosts"]["local"]["hooks"] = {"after_deploy": f"touch {smoke}"}
    sent = tmp_path / "run.host.yml"
    sent.write_text(host_yml(inventory.from_data(data).hosts["local"]))
    argv = ("local-update", "-i", str(sent), "-H", "local", "--install-config", str(sent), "--json",
            "--trigger", "deploy", "--actor", "ci@runner")
    box.origin.push("v2", {"VERSION": "2\n"})
    lock = HostLock(HostPaths.for_home(str(box.home)).lock, {"trigger": "cron", "actor": "cron", "phase": "change"})
    assert lock.try_acquire()
    try:
        r = run_cli(*argv, timeout=120)
    finally:
        lock.release()
    assert (r.returncode, json.loads(r.stdout)["hosts"]["local"]["result"]) == (4, "locked"), r.stdout
    assert (box.home / "host.yml").read_text() == installed
    r = run_cli(*argv, timeout=120)
    res = json.loads(r.stdout)["hosts"]["local"]
    assert (r.returncode, res["result"]) == (0, "deployed"), res
    assert smoke.exists() and (box.home / "host.yml").read_text() == sent.read_text()


def test_roots_signers_file_counts_whatever_sandbox_the_settings_say(tmp_path, monkeypatch):
    """`sandbox: true` in settings a push sent must not move the lookup
    into the home, where no file is: root's /etc/fabops/<app>/ file counts."""
    from fabops.host import verify

    monkeypatch.setattr(verify, "SIGNERS_DIR", str(tmp_path / "etc"))
    sandboxed = host(sandbox=True)
    assert verify.required_signers(sandboxed, str(tmp_path / "home")) == ""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "allowed_signers").write_text("x\n")
    assert verify.required_signers(sandboxed, str(tmp_path / "home")) == str(tmp_path / "home" / "allowed_signers")
    root = tmp_path / "etc" / sandboxed.app.name / "allowed_signers"
    root.parent.mkdir(parents=True)
    root.write_text("x\n")
    assert verify.required_signers(sandboxed, str(tmp_path / "home")) == str(root)
    assert verify.required_signers(host(), "/nowhere") == str(root)
    assert verify.signed_apps() == (str(root),)


def test_a_home_setup_never_set_up_is_refused_where_signed_commits_are_required(tmp_path, monkeypatch):
    """Sent settings naming a home without an installed host.yml would run
    with nothing but themselves (hooks included): on a host with any app's
    allowed signers that is refused, exit 78, before the lock."""
    from fabops import errors
    from fabops.host import verify
    from fabops.tasks import update

    monkeypatch.setattr(verify, "SIGNERS_DIR", str(tmp_path / "etc"))
    sent = tmp_path / "sent.yml"
    entry = {"connection": "local", "app": {"path": str(tmp_path / "app")}, "home": str(tmp_path / "newhome"),
             "services": [{"name": "api", "manager": "process", "command": "python3 api.py"}],
             "hooks": {"on_failure": "touch /tmp/pwned"}}
    sent.write_text(yaml.safe_dump({"hosts": {"h": entry}}))
    used, _ = update._with_config(host(), str(sent))
    assert used.home == str(tmp_path / "newhome"), "no signers anywhere: the sent settings are all there is, as before"
    (tmp_path / "etc" / "other-app").mkdir(parents=True)
    (tmp_path / "etc" / "other-app" / "allowed_signers").write_text("x\n")
    with pytest.raises(errors.ConfigError) as e:
        update._with_config(host(), str(sent))
    assert e.value.exit_code == errors.CONFIG and "requires signed commits" in str(e.value) and "run setup" in str(e.value)


def _entry(app: str, home: str, **more) -> inventory.Host:
    entry = {"connection": "local", "app": {"path": app}, "home": home,
             "services": [{"name": "api", "manager": "process", "command": "python3 api.py"}], **more}
    return inventory.loads(yaml.safe_dump({"hosts": {"web1": entry}}), "h.yml").hosts["web1"]


def test_another_apps_home_sent_does_not_switch_verification_off(tmp_path, monkeypatch):
    """Two apps, one deploy user: A requires signed commits, B does not. A
    push to A's repository that sends B's home (and host name) with A's
    app.path found B's installed host.yml, so no signers: its settings and
    hooks were taken at once. Either settings' app requiring signed commits
    counts, and the move of app.path is caught: nothing is installed."""
    from fabops.connection import local_context
    from fabops.deploy import host_yml
    from fabops.host import verify
    from fabops.host.pipeline import Pipeline, UpdateOptions
    from fabops.tasks.update import _with_config

    monkeypatch.setattr(verify, "SIGNERS_DIR", str(tmp_path / "etc"))
    (tmp_path / "etc" / "a").mkdir(parents=True)
    (tmp_path / "etc" / "a" / "allowed_signers").write_text("x\n")
    home_b = tmp_path / "fabops-b"
    home_b.mkdir()
    (home_b / "host.yml").write_text(host_yml(_entry(str(tmp_path / "b"), str(home_b))))
    sent = _entry(str(tmp_path / "a"), str(home_b), hooks={"after_deploy": "id > /tmp/pwned"})
    (tmp_path / "sent.yml").write_text(host_yml(sent))
    start, waiting = _with_config(sent, str(tmp_path / "sent.yml"))
    p = Pipeline(local_context(start), start, UpdateOptions(trigger="ci"), sent=waiting)
    installed = []
    p._install_settings = installed.append
    assert p._settings_at_start() == str(tmp_path / "etc" / "a" / "allowed_signers")
    assert p.sent_state == "pending" and p.host.app.path == str(tmp_path / "b") and not p.host.hooks
    assert p._moves() == ("app.path",) and installed == []


def test_a_reported_run_takes_no_settings_that_move_the_app(tmp_path):
    """A deploy that reports the run it waited for (its very commit,
    deployed) takes its settings, but on a host that requires signed
    commits not ones that move the app: the same rule as the plan's."""
    from fabops.connection import local_context
    from fabops.deploy import host_yml
    from fabops.host.pipeline import Pipeline, UpdateOptions
    from fabops.host.settings import Sent

    home = tmp_path / "home"
    home.mkdir()
    own = _entry("/srv/app", str(home))
    moved = inventory.loads(yaml.safe_dump({"hosts": {"web1": {
        "connection": "local", "app": {"path": "/srv/app", "remote": "evil", "branch": "other"}, "home": str(home),
        "services": [{"name": "api", "manager": "process", "command": "python3 api.py"}]}}}), "h.yml").hosts["web1"]
    (home / "host.yml").write_text(host_yml(own))
    for signers, taken in ((FILE, False), ("", True)):
        p = Pipeline(local_context(own), own, UpdateOptions(trigger="ci"),
                     sent=Sent(host_yml(moved), str(home / "host.yml"), moved))
        p.signers = signers
        installed = []
        p._install_settings = installed.append
        p.res.result, p.res.to = "deployed", A
        p._settings_reported()
        assert (p.sent_state == "taken") is taken and bool(installed) is taken
        assert p.host.app.remote == ("evil" if taken else own.app.remote)
        assert taken or any("they change app.remote, app.branch" in w for w in p.res.warnings), p.res.warnings


def test_cis_settings_count_only_as_the_targets_own_where_signed_commits_are_required():
    """A re-run of an unsigned commit's CI job after a signed one landed
    sends that commit's hosts.yml under the signed target: on a host that
    requires signed commits CI's settings are installed only when the
    commit they came from (--settings-from) is the target itself."""
    from fabops.deploy import NO_COMMIT

    signed = Signed(B, True, "signed for alice@example")
    for source in (NO_COMMIT, A, "c" * 40):
        p = decide(trigger="ci", signed=signed, source=source)
        assert isinstance(p, Plan) and p.kind == "deploy", p
        came = {A: "from aaaaaaaaaa", "c" * 40: "from cccccccccc"}.get(source, "from no known commit")
        assert any(w.startswith("host.yml: this deploy's settings were not installed: CI's hosts.yml comes " + came)
                   and "not from the target bbbbbbbbbb" in w for w in p.warnings), p.warnings
    need = decide(trigger="ci", signed=signed, source=B)
    assert isinstance(need, Need) and need.fact == "settings"
    # the deployed commit (a noop) is no exception for CI, and a person's deploy is unchanged
    assert not isinstance(decide(trigger="ci", origin=A, source=B), Need)
    assert isinstance(decide(trigger="ci", origin=A, source=A), Need)
    assert isinstance(decide(origin=A), Need)
    # whatever the trigger: a promote run from main's head in CI ships the
    # signed candidate, never main's settings; a rollback's own pick likewise
    assert not isinstance(decide(trigger="promote", ref=B, signed=signed, source=A), Need)
    assert isinstance(decide(trigger="promote", ref=B, signed=signed, source=B), Need)
    assert not isinstance(decide(trigger="rollback", deployed=B, source=A), Need)
    # a run that says nothing of its settings' commit is a person's: as before
    assert isinstance(decide(trigger="ci", signed=signed, source=None), Need)
    # a host that requires no signed commits took them at the lock: nothing pending here
    assert isinstance(decide(trigger="ci", signers=""), Need)


def test_a_deploy_sends_the_commit_its_settings_came_from():
    from fabops.deploy import DeployOptions, local_update_argv

    argv = local_update_argv(host(), "r1", DeployOptions(trigger="ci", settings_from=A), "cfg")
    assert argv[argv.index("--settings-from") + 1] == A
    assert "--settings-from" not in local_update_argv(host(), "r1", DeployOptions(), "cfg")


def test_a_run_in_ci_always_says_where_its_settings_came_from(tmp_path):
    from fabops.deploy import NO_COMMIT, ci_settings_from

    inv = tmp_path / "hosts.yml"
    inv.write_text("hosts: {}\n")
    assert ci_settings_from(str(inv), {}) is None  # a person's run: nothing sent
    assert ci_settings_from(str(inv), {"JENKINS_URL": "http://ci"}) is None  # the Jenkins CLI's, in a person's shell
    for env in ({"CI": "true"}, {"CI": "1"}, {"JENKINS_URL": "http://ci", "BUILD_NUMBER": "3"}, {"TF_BUILD": "True"}):
        assert ci_settings_from(str(inv), env) == NO_COMMIT, env  # in CI, no checkout: no known commit


@pytest.mark.parametrize("width", [80, 200])
def test_a_host_refused_before_its_run_has_no_summary_row(width, capsys, monkeypatch):
    """A host whose deploy was refused before its run (78: sent settings
    without a home where signed commits are required) is said once, whole,
    on stderr, as a refused flag value (64) is: a row would be a cut copy
    of that line beside the hosts that ran."""
    from types import SimpleNamespace

    from fabops import errors
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("COLUMNS", str(width))
    ran = {"result": "noop", "from": "a" * 40, "to": "a" * 40, "duration": 0.2, "message": "up to date"}
    refused = errors.ConfigError("~/.fabops/x/host.yml", "", "not there, and this host requires signed commits "
                                 "(/etc/fabops/x): a deploy runs only where setup set up fabops; run setup for this "
                                 "host")
    outcome = FanoutResult([HostResult("web1", value=SimpleNamespace(result=ran, install=None)),
                            HostResult("web2", error=refused, code=errors.CONFIG)])
    capsys.readouterr()
    _report(outcome, False)
    out, err = capsys.readouterr()
    assert "web1" in out and "web2" not in out, out
    assert err.count("requires signed commits") == 1 and "fabops: web2:" in err, err
