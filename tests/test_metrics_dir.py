"""hosts.yml's metrics_dir and the directory setup makes for it
(docs/security.md, "The metrics directory"): a pusher who edits hosts.yml
must not get root to hand the deploy user a directory root reads programs
or settings from (/etc/systemd/system-generators, a unit's .d directory).
The validator's allow-list, setup's decision from root's look at each
directory on the path (pure, given facts), the look script run for real
over directories here, and the one root command setup runs."""
from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
import yaml

from fabops import inventory, setup
from fabops.errors import ConfigError
from fabops.validate import TEXTFILE_DIRS

DEBIAN, UPSTREAM = TEXTFILE_DIRS
ROOT_DIR = "dir 0 755"


def load(metrics_dir: str, **entry):
    host = {"user": "ec2-user", "app": {"path": "~/app"}, "metrics_dir": metrics_dir, **entry}
    return inventory.loads(yaml.safe_dump({"hosts": {"web": host}}), "hosts.yml").hosts["web"]


# ------------------------------------------------------------ the validator

@pytest.mark.parametrize("path", [
    "/etc/systemd/system-generators", "/etc/systemd/system/x.service.d", "/etc/systemd/system.conf.d", "/root/x",
    f"{DEBIAN}/../../../../etc/cron.d", f"{DEBIAN}/./x", f"{DEBIAN}//x", f"{DEBIAN}/", f"{DEBIAN}/a/b",
    "/var/lib/prometheus", "/var/lib/node_exporter", f"{DEBIAN}x", "/etc/prometheus/node-exporter", "/usr/lib/x",
    "~/a/../../../etc/x", "~", "~/"])
def test_a_metrics_dir_outside_home_and_the_textfile_places_is_refused(path):
    with pytest.raises(ConfigError) as err:
        load(path)
    assert err.value.exit_code == 78 and err.value.problems[0][0] == "hosts.web.metrics_dir", err.value
    assert str(err.value).startswith("hosts.yml: hosts.web.metrics_dir: "), err.value


def test_the_refusal_says_where_it_may_be_and_why():
    with pytest.raises(ConfigError) as err:
        load("/etc/systemd/system-generators")
    said = str(err.value)
    assert "'/etc/systemd/system-generators' must be under ~/" in said and DEBIAN in said and UPSTREAM in said
    assert "setup makes it as root for the deploy user" in said


@pytest.mark.parametrize("path", [DEBIAN, f"{DEBIAN}/fabops", UPSTREAM, f"{UPSTREAM}/bot", "~/metrics",
                                  "~/.fabops/metrics"])
def test_home_and_the_textfile_places_are_accepted(path):
    assert load(path).metrics_dir == path


def test_a_local_hosts_metrics_dir_is_the_operators_own(tmp_path):
    """As with the logs, only an ssh host's is checked at load; setup still
    never makes a path outside the allow-list as root (below)."""
    assert load(str(tmp_path / "textfile"), connection="local").metrics_dir == str(tmp_path / "textfile")


# ------------------------------------------------------------ setup's decision

def facts(*kinds: str, uid: str = "1000") -> list:
    return [uid, *kinds]


def step(where: str, *kinds: str, uid: str = "1000"):
    return setup.metrics_dir_step(where, "ec2-user", facts(*kinds, uid=uid))


# /, /var, /var/lib, /var/lib/node_exporter, /var/lib/node_exporter/textfile_collector
def test_root_makes_only_a_missing_last_directory_in_a_root_only_chain():
    assert step(UPSTREAM, ROOT_DIR, ROOT_DIR, ROOT_DIR, ROOT_DIR, "absent") == ("root", "")
    assert step(UPSTREAM, ROOT_DIR, ROOT_DIR, ROOT_DIR, ROOT_DIR, ROOT_DIR) == ("dir", "")


@pytest.mark.parametrize("where, kinds, said", [
    # the hostile values, were they to reach setup (a local host's): no root mkdir
    ("/etc/systemd/system-generators", [ROOT_DIR] * 3 + ["absent"], "does not make it as root: metrics_dir must be"),
    ("/etc/systemd/system/x.service.d", [ROOT_DIR] * 4 + ["absent"], "does not make it as root"),
    ("/etc/systemd/system.conf.d", [ROOT_DIR] * 3 + ["absent"], "does not make it as root"),
    ("/root/x", [ROOT_DIR, "dir 0 700", "absent"], "does not make it as root"),
    # a symbolic link anywhere on the way (root would follow it), or at the end
    (UPSTREAM, [ROOT_DIR, ROOT_DIR, ROOT_DIR, "link", "absent"], "/var/lib/node_exporter is a symbolic link"),
    (UPSTREAM, [ROOT_DIR, "link", ROOT_DIR, ROOT_DIR, "absent"], "/var is a symbolic link"),
    (UPSTREAM, [ROOT_DIR] * 4 + ["link"], f"{UPSTREAM} is a symbolic link"),
    (f"{DEBIAN}/bot", [ROOT_DIR, ROOT_DIR, ROOT_DIR, "link", ROOT_DIR, "dir 1000 755"], "symbolic link"),
    (UPSTREAM, [ROOT_DIR] * 4 + ["other"], "is not a directory"),
    # only the last directory is made
    (UPSTREAM, [ROOT_DIR] * 3 + ["absent", "absent"], "/var/lib/node_exporter does not exist"),
    # a directory on the way that someone other than root could change
    (UPSTREAM, [ROOT_DIR, ROOT_DIR, "dir 0 1777", ROOT_DIR, "absent"], "/var/lib is ec2-user's or writable by"),
    (UPSTREAM, [ROOT_DIR, ROOT_DIR, "dir 1000 755", ROOT_DIR, "absent"], "/var/lib is ec2-user's"),
    (UPSTREAM, [ROOT_DIR, ROOT_DIR, ROOT_DIR, "dir 0 775", "absent"], "/var/lib/node_exporter is ec2-user's or"),
    (UPSTREAM, [ROOT_DIR, ROOT_DIR, ROOT_DIR, "dir 112 755", "absent"], "/var/lib/node_exporter is not root's"),
    # an answer it cannot read is not taken for "absent"
    (UPSTREAM, [ROOT_DIR, ROOT_DIR], "could not tell what is there"),
    (UPSTREAM, [ROOT_DIR, "dir", ROOT_DIR, ROOT_DIR, "absent"], "could not tell what is there"),
])
def test_setup_warns_and_makes_nothing(where, kinds, said):
    action, words = step(where, *kinds)
    assert action == "warning" and said in words, words


def test_a_directory_in_the_deploy_users_own_parent_is_made_by_that_user():
    assert step(f"{DEBIAN}/bot", *[ROOT_DIR] * 4, "dir 1000 755", "absent") == ("user", "")
    # a deploy user that is root is no reason to skip the allow-list
    assert step("/etc/systemd/system-generators", *[ROOT_DIR] * 3, "absent", uid="0")[1].startswith(
        "/etc/systemd/system-generators is not there and fabops does not make it as root")
    assert step("/etc/x", ROOT_DIR, ROOT_DIR, "absent", uid="none")[0] == "warning"  # no such user


def test_the_look_script_reads_this_machine_without_following_a_link(tmp_path):
    """metrics_dir_look's script, run here without its sudo, over a real
    path with a linked parent: the link is reported, nothing is made."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real)
    where = str(tmp_path / "linked" / "textfile")
    cmd = setup.metrics_dir_look(where, "root")
    assert cmd.startswith("sudo -n sh -c ")
    out = subprocess.run(["sh", "-c", cmd[len("sudo -n "):]], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "0" and lines[-2:] == ["link", "absent"] and len(lines) == 1 + len(setup.metrics_dir_parts(where))
    assert lines[1] == "dir 0 755"  # /: owner uid, mode
    action, words = setup.metrics_dir_step(where, "root", lines)
    assert action == "warning" and f"{tmp_path / 'linked'} is a symbolic link" in words
    assert not (real / "textfile").exists()


# ------------------------------------------------------------ setup's item

class Recorder:
    """A Target that answers the look with `facts` and records what runs."""

    def __init__(self, answer: str):
        self.answer, self.ran = answer, []

    def output(self, cmd):
        return self.answer

    def run(self, cmd, what=""):
        self.ran.append(cmd)

    def ok(self, cmd):
        return True


def item(host, answer: str, check=False):
    t = Recorder(answer)
    run = SimpleNamespace(host=host, t=t, dt=t, check=check, writable_by_user=lambda paths: paths)
    return [(r.status, r.message) for r in setup._metrics_dir(run)], t.ran


def test_the_item_runs_one_root_mkdir_of_the_last_directory_and_chowns_only_it():
    host = load(UPSTREAM)
    answer = "\n".join(facts(*[ROOT_DIR] * 4, "absent"))
    assert item(host, answer, check=True) == ([("would change", f"create {UPSTREAM} (0755, ec2-user)")], [])
    said, ran = item(host, answer)
    assert said == [("changed", f"created {UPSTREAM} (0755, ec2-user)")]
    assert ran == [f"sudo -n sh -c 'mkdir -m 0755 -- \"$1\" && chown -h -- \"$2\" \"$1\"' sh {UPSTREAM} ec2-user"]


def test_the_item_never_touches_an_existing_directory_nor_a_hostile_path(tmp_path):
    said, ran = item(load(UPSTREAM), "\n".join(facts(*[ROOT_DIR] * 5)))
    assert said == [("ok", UPSTREAM)] and ran == []
    # a local (non-sandbox) host loads any path; setup still refuses it as root
    host = load("/etc/systemd/system-generators", connection="local")
    said, ran = item(host, "\n".join(facts(*[ROOT_DIR] * 3, "absent")))
    assert said[0][0] == "warning" and "does not make it as root" in said[0][1] and ran == []
