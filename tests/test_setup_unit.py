"""Renderers of `inv setup` (pure): exact text for the shipped find-to-do host."""
import shutil
import subprocess

import pytest
import yaml

from fabops import inventory, setup
from tests.conftest import ROOT


@pytest.fixture
def host():
    return inventory.load(str(ROOT / "hosts.yml")).hosts["find-to-do"]


def test_sudoers_allows_only_the_exact_commands(host):
    text = setup.sudoers_text(host)
    rules = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert len(rules) == 2 * 4  # start, stop, restart, reset-failed for each unit
    assert "ec2-user ALL=(root) NOPASSWD: /usr/bin/systemctl restart voice-meeting-discord-bot.service" in rules
    assert all(r.startswith("ec2-user ALL=(root) NOPASSWD: /usr/bin/systemctl ") for r in rules)
    # exact argument vectors: no wildcard, no journalctl, no pager-capable verb
    assert not any("*" in r or "journalctl" in r or " status " in r or r.endswith(" ALL") for r in rules)


def test_sudoers_escapes_what_sudoers_treats_as_syntax(host, tmp_path):
    """`:` is legal in a unit name (foo@a:b.service) and a separator in
    sudoers; unescaped, visudo refuses the file (or it means another rule)."""
    import dataclasses

    svc = dataclasses.replace(host.services[0], name="voice@a:b.service")
    odd = dataclasses.replace(host, services=(svc,))
    f = tmp_path / "sudoers"
    f.write_text(setup.sudoers_text(odd))
    assert "voice@a\\:b.service" in f.read_text()
    r = subprocess.run([shutil.which("visudo") or "/usr/sbin/visudo", "-cf", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sudoers_text_passes_visudo(host, tmp_path):
    f = tmp_path / "sudoers"
    f.write_text(setup.sudoers_text(host))
    r = subprocess.run([shutil.which("visudo") or "/usr/sbin/visudo", "-cf", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_logrotate_text_passes_logrotate_debug(host, tmp_path):
    text = setup.logrotate_text(host, "/home/ec2-user", "ec2-user")
    assert text.splitlines()[1] == "/var/log/voice-meeting-bot-update.log /var/log/voice-meeting-bot-health.log {"
    assert "rotate 8" in text and "weekly" in text and "compress" in text and "missingok" in text
    assert "su " not in text  # root-owned /var/log: root rotates there
    f = tmp_path / "rot"
    f.write_text(text.replace("ec2-user ec2-user", "root root"))
    r = subprocess.run([shutil.which("logrotate") or "/usr/sbin/logrotate", "-d", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_logrotate_spells_a_home_log_absolute():
    h = inventory.loads(yaml.safe_dump({"hosts": {"x": {"user": "deploy", "app": {"path": "/srv/app"},
                                                        "logs": {"update": "~/logs/update.log"}}}}), "x.yml").hosts["x"]
    text = setup.logrotate_text(h, "/home/deploy", "staff")
    # in a directory the deploy user can write, rotated as that user
    assert text.splitlines()[1:3] == ["/home/deploy/logs/update.log {", "    su deploy staff"], text
    h2 = inventory.loads(yaml.safe_dump({"hosts": {"x": {"user": "deploy", "app": {"path": "/srv/app"}, "logs": {
        "update": "/var/log/bot/update.log", "health": "/var/log/legacy/health.log"}}}}), "x.yml").hosts["x"]
    text = setup.logrotate_text(h2, "/home/deploy", "deploy", ["/var/log/legacy"])
    assert text.splitlines()[1] == "/var/log/bot/update.log {" and "/var/log/legacy/health.log {\n    su deploy" in text


def test_unit_template_names_a_launcher_and_no_command_text():
    h = inventory.loads(yaml.safe_dump({"hosts": {"x": {
        "user": "ec2-user", "app": {"path": "~/voice-meeting-bot"}, "env_file": "node-bot/.env",
        "services": [{"name": "voice-meeting-discord-bot.service", "unit": True,
                      "command": "node index.js --tag '%h ${HOME} \\\\x'", "workdir": "node-bot"}]}}}),
        "x.yml").hosts["x"]
    text = setup.unit_text(h, h.services[0], "/home/ec2-user")
    assert "WorkingDirectory=/home/ec2-user/voice-meeting-bot/node-bot\n" in text
    assert "EnvironmentFile" not in text and "index.js" not in text and "%" not in text  # nothing systemd rewrites
    assert ("ExecStart=/usr/local/libexec/fabops/voice-meeting-bot/voice-meeting-discord-bot.service\n" in text)
    assert "Restart=on-failure\n" in text and "User=ec2-user\n" in text


def test_launcher_runs_the_command_as_written_with_the_env_file_read_literally(tmp_path):
    """The launcher script, run by a real sh against this checkout's
    fabops.host.launch: the command's %, $ and backslashes reach the
    program as written, and the .env's values arrive as systemd read them."""
    import sys

    app = tmp_path / "app"
    (app / "node-bot").mkdir(parents=True)
    (app / "node-bot" / ".env").write_text('TOKEN="a $b \\"c\\""\nPLAIN=x\\ y  \n# comment\n')
    h = inventory.loads(yaml.safe_dump({"hosts": {"x": {
        "user": "ec2-user", "app": {"path": str(app)}, "env_file": "node-bot/.env", "home": str(tmp_path / "fh"),
        "services": [{"name": "bot.service", "unit": True,
                      "command": "printf '%s|%s|%s' \"$TOKEN\" \"$PLAIN\" '%h ${HOME} \\\\x'"}]}}}),
        "x.yml").hosts["x"]
    (tmp_path / "fh").mkdir()
    (tmp_path / "fh" / "venv").symlink_to(sys.prefix)  # this test run's venv, fabops installed in it
    (app / "fabops").mkdir()  # an app's own fabops/ must not stand in for the launcher (python -I)
    (app / "fabops" / "__init__.py").write_text("raise SystemExit('the app shadowed fabops')\n")
    script = tmp_path / "launcher"
    script.write_text(setup.launcher_text(h, h.services[0], "/nonexistent"))
    r = subprocess.run(["sh", str(script)], capture_output=True, text=True, cwd=str(app),
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(app)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'a $b "c"|x y|%h ${HOME} \\\\x'


def test_wrapper_calls_fabops_with_host_yml(host):
    text = setup.wrapper_text(host, ["monitor"])
    assert text.splitlines()[-1] == (
        'exec "$HOME"/.fabops/voice-meeting-bot/venv/bin/fabops monitor -i "$HOME"/.fabops/voice-meeting-bot/host.yml "$@"')


def test_host_python_older_than_3_9_is_a_clear_error(host):
    from invoke import MockContext, Result

    from fabops import install
    from fabops.errors import FabopsError

    out = "@@fabops:python\n3 8 x86_64\n@@fabops:marker\n@@fabops:fabops\n@@fabops:end\n"
    c = MockContext(run={install.probe_cmd(host): Result(out)})
    wheel = install.Wheel("/nonexistent.whl", "0" * 64, "0.1.0")
    with pytest.raises(FabopsError, match="the host's python3 is 3.8; fabops needs 3.9 or newer"):
        install.ensure_installed(c, host, wheel=wheel)
    c = MockContext(run={install.probe_cmd(host): Result("@@fabops:python\n@@fabops:end\n")})
    with pytest.raises(FabopsError, match="no usable python3"):
        install.ensure_installed(c, host, wheel=wheel)


def test_the_sudoers_drop_in_name_has_no_dot_sudo_would_skip():
    h = inventory.loads(yaml.safe_dump({"hosts": {"x": {"app": {"path": "/srv/app.v2"}}}}), "x.yml").hosts["x"]
    assert setup.sudoers_path(h) == "/etc/sudoers.d/fabops-app_v2"


@pytest.mark.parametrize("path", ["/etc/shadow", "/var/log/../../etc/shadow", "/var/log/a/b/c.log", "/var/log/",
                                  "/var/logx/a.log", "/root/x.log", "/tmp/update.log"])
def test_a_log_setup_would_create_outside_var_log_or_home_is_refused(path):
    from fabops.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        inventory.loads(yaml.safe_dump({"hosts": {"x": {"app": {"path": "/srv/app"}, "logs": {"update": path}}}}),
                        "x.yml")
    assert err.value.problems[0][0] == "hosts.x.logs.update"


@pytest.mark.parametrize("path", ["/var/log/bot-update.log", "/var/log/bot/update.log", "~/logs/update.log"])
def test_logs_under_var_log_or_home_are_accepted(path):
    inventory.loads(yaml.safe_dump({"hosts": {"x": {"app": {"path": "/srv/app"}, "logs": {"health": path}}}}), "x.yml")


def block(name, user="", load="loaded", workdir="", env_files=(), start_only="no", **execs):
    """One unit as unit_facts_cmd prints it (systemctl show's own forms)."""
    lines = [f"Name={name}", f"Id={name}", f"LoadState={load}", f"User={user}", f"WorkingDirectory={workdir}",
             f"PermissionsStartOnly={start_only}"]
    lines += [f"EnvironmentFiles={e} (ignore_errors=no)" for e in env_files]
    for prop, (argv, flags) in execs.items():
        lines.append(f"{prop}={{ path={argv.split()[0]} ; argv[]={argv} ; flags={flags} ; start_time=[n/a] ; "
                     "stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }")
    return "\n".join(lines) + "\n@@end\n"


APP_JS = "/usr/bin/node /home/ec2-user/voice-meeting-bot/node-bot/index.js"
SHOW = "".join([
    block("legacy-bot.service", ExecStartEx=(APP_JS, "")),
    block("ours.service", user="ec2-user", workdir="/home/ec2-user/voice-meeting-bot",
          ExecStartEx=("/usr/local/libexec/fabops/app/ours.service", "")),
    block("cwd.service", user="root", workdir="!/home/ec2-user/voice-meeting-bot/python-api",
          ExecStartEx=("/usr/bin/python3 app.py", "")),
    block("envfile.service", workdir="/", env_files=["-/home/ec2-user/voice-meeting-bot/.env"],
          ExecStartEx=("/usr/sbin/cron -f", "")),
    block("plus.service", user="ec2-user", ExecStartPreEx=("/home/ec2-user/prep.sh", "privileged"),
          ExecStartEx=("/usr/bin/node index.js", "")),
    block("startonly.service", user="ec2-user", start_only="yes", ExecStartPreEx=("/opt/bot/prep.sh", ""),
          ExecStartEx=("/usr/bin/node index.js", "")),
    block("opt.service", ExecStartEx=("/usr/bin/python3 /opt/bot/main.py", "")),
    block("cond.service", user="ec2-user", ExecConditionEx=("/home/ec2-user/check.sh", "privileged"),
          ExecStartEx=("/usr/bin/node index.js", "")),
    block("system.service", ExecStartEx=("/usr/sbin/cron -f", "")),
    block("gone.service", load="not-found"),
    "Name=legacy-root\n@@end\n",  # no such unit name: systemctl printed nothing
])
ROOTS = ["/home/ec2-user/voice-meeting-bot", "/home/ec2-user"]


def test_every_way_a_unit_runs_the_deploy_users_code_as_root_is_found():
    from fabops.unit_audit import parse_unit_facts, root_paths, root_unit_problem, with_parents

    facts = parse_unit_facts(SHOW)
    writable = ["/opt/bot"]  # what setup's sudo -u test -w found (a deploy-owned directory)
    assert "/opt/bot" in with_parents(root_paths(facts["opt.service"]))
    problem = {u: root_unit_problem(f, ROOTS, writable) for u, f in facts.items()}
    problem["legacy-root"] = root_unit_problem(facts.get("legacy-root", {}), ROOTS, writable)
    problem["missing"] = root_unit_problem({}, ROOTS, writable)
    for unit in ("legacy-bot.service", "cwd.service", "envfile.service", "plus.service", "cond.service"):
        assert problem[unit] and "runs as root from /home/ec2-user" in problem[unit], (unit, problem[unit])
    assert "/opt/bot" in problem["startonly.service"] and "/opt/bot" in problem["opt.service"]
    assert "could not be read" in problem["legacy-root"] and "could not be read" in problem["missing"]
    assert problem["ours.service"] is None and problem["system.service"] is None and problem["gone.service"] is None


def test_a_refused_unit_gets_no_rule_in_the_drop_in(host):
    unit = host.services[0].name
    text = setup.sudoers_text(host, without=[unit])
    assert unit not in text
    assert host.services[1].name in text


def test_the_lockout_units_are_known_by_systemds_own_name():
    from fabops.unit_audit import lockout_unit

    assert lockout_unit("ssh") and lockout_unit("sshd") and lockout_unit("ssh.socket")
    assert lockout_unit("login-alias", {"Id": ["ssh.service"]})  # an alias names its unit
    assert lockout_unit("systemd-logind") and lockout_unit("sshd@1-10.0.0.1:22-10.0.0.2:5000.service")
    assert not lockout_unit("nginx") and not lockout_unit("bot.service", {"Id": ["bot.service"]})


@pytest.mark.parametrize("width", [60, 80, 100])
def test_a_wrapped_diff_line_never_ends_in_a_space(width):
    """textwrap keeps the space before a long word it breaks (`host.yml >> `
    at a line's end, as a trial saw it with one temp directory's length and
    not another's): every length of the path, no trailing space."""
    from fabops.tasks.setup import diff_lines

    for n in range(1, 140):
        line = "+*/5 * * * * cd && ~/.fabops/app/venv/bin/fabops local-update -i host.yml >> /tmp/" + "p" * n + "/cron.log"
        for out in diff_lines("h1", line, width):
            assert out == out.rstrip(), (n, out)
