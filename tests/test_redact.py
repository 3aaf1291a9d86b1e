"""A repository URL's password is shown as *** wherever fabops shows the URL
(docs/backups.md, "Off the host"; docs/security.md): `hosts --json`, a
hosts.yml problem, restic's error lines. The user name stays, and host.yml
and restic's RESTIC_REPOSITORY keep the real URL. Before the fix, `hosts
--json` and `hosts --check` printed `rest:https://user:TOKEN@...` as written."""
import json
import os

import pytest
import yaml

from fabops import inventory
from fabops.deploy import host_yml
from fabops.redact import redacted
from tests.conftest import run_cli

TOKEN = "s3cr3t-Tok3n-7d1e"


@pytest.mark.parametrize("url, shown", [
    (f"rest:https://user:{TOKEN}@backup.example:8000/repo", "rest:https://user:***@backup.example:8000/repo"),
    (f"s3:https://KEYID:{TOKEN}@s3.example.com/bucket/app", "s3:https://KEYID:***@s3.example.com/bucket/app"),
    (f"rest:https://user:{TOKEN}@with@at@host/repo", "rest:https://user:***@host/repo"),  # Go's url: the last @
    (f"rest:http://:{TOKEN}@host/", "rest:http://:***@host/"),
    # a user alone is a login, not a secret; a port is not a password
    ("sftp:backup@b.example:/srv/restic", "sftp:backup@b.example:/srv/restic"),
    ("sftp://backup@b.example:2222//srv/restic", "sftp://backup@b.example:2222//srv/restic"),
    ("rest:https://b.example:8000/repo@2", "rest:https://b.example:8000/repo@2"),
    ("/srv/restic/app", "/srv/restic/app"),
])
def test_the_password_is_masked_and_the_user_kept(url, shown):
    assert redacted(url) == shown
    # in running text too (restic's own words)
    assert redacted(f'Fatal: Get "{url}/config": refused') == f'Fatal: Get "{shown}/config": refused'


def entry(tmp_path, url: str) -> dict:
    return {"hosts": {"h": {"connection": "local", "app": {"path": str(tmp_path / "app")},
                            "home": str(tmp_path / "home"),
                            "backup": {"repository": {"url": url, "password_file": str(tmp_path / "pw")}}}}}


def test_hosts_json_masks_the_repository_password(tmp_path):
    url = f"rest:https://user:{TOKEN}@backup.example/app"
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(entry(tmp_path, url)))
    r = run_cli("hosts", "--json", "-i", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    shown = json.loads(r.stdout)["hosts"]["h"]["backup"]["repository"]
    assert shown["url"] == "rest:https://user:***@backup.example/app", shown
    for args in (("hosts", "--json"), ("hosts",), ("hosts", "--check")):
        r = run_cli(*args, "-i", str(path))
        assert r.returncode == 0 and TOKEN not in r.stdout + r.stderr, (args, r.stdout + r.stderr)
    # the host's own settings keep it: restic reads the URL from there
    host = inventory.from_data(entry(tmp_path, url)).hosts["h"]
    assert yaml.safe_load(host_yml(host))["hosts"]["h"]["backup"]["repository"]["url"] == url


@pytest.mark.parametrize("url, said", [
    # a refused character in the password: said, never named or quoted
    (f"rest:https://user:{TOKEN}$x@backup.example/app", "its password holds a character"),
    # one outside it: named, with the URL quoted without its password
    (f"rest:https://user:{TOKEN}@backup.example/my app", "'rest:https://user:***@backup.example/my app'"),
])
def test_a_hosts_yml_problem_never_quotes_the_password(tmp_path, url, said):
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(entry(tmp_path, url)))
    r = run_cli("hosts", "--check", "-i", str(path))
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 78 and "backup.repository.url" in out and said in out, out
    assert TOKEN not in out and "'$'" not in out, out


def test_restics_own_spelling_of_the_url_shows_no_password(tmp_path, monkeypatch):
    """restic (or ssh under it) may print the URL its own way, not as
    written: the real URL still reaches restic, in RESTIC_REPOSITORY."""
    from fabops.host import restic

    url = f"rest:https://user:{TOKEN}@127.0.0.1:1/r"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "restic").write_text('#!/bin/sh\nprintf "%s\\n" "$RESTIC_REPOSITORY" > "$0.seen"\n'
                                    f'echo \'Fatal: Head "https://user:{TOKEN}@127.0.0.1:1/r/config": refused\' >&2\n'
                                    'exit 1\n')
    (bin_dir / "restic").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    repo = inventory.Repository(url, str(tmp_path / "pw"))
    with pytest.raises(restic.ResticError) as err:
        restic.call(repo, "snapshots")
    assert TOKEN not in str(err.value) and "https://user:***@127.0.0.1:1/r/config" in str(err.value), err.value
    assert (bin_dir / "restic.seen").read_text() == url + "\n"


# The review's cases: a password with a space, `/`, `#` or `?` is refused by
# hosts --check without a character of it shown, and every whole value is
# masked to its last `@`; a check URL's userinfo, and header and env values
# under names that say secret, are `***` in hosts --json.
def _inventory(tmp_path, url, **extra):
    host = {"connection": "local", "app": {"path": str(tmp_path / "app")},
            "backup": {"repository": {"url": url, "password_file": str(tmp_path / "pw")}}}
    host.update(extra)
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"hosts": {"h": host}}))
    return path


@pytest.mark.parametrize("password", ["xq7 zk9", "xq7/zk9", "xq7#zk9", "xq7?zk9", "xq7$zk9"])
def test_a_password_a_url_parser_would_cut_is_refused_without_a_character_of_it(tmp_path, password):
    url = f"rest:https://user:{password}@127.0.0.1:1/repo"
    r = run_cli("hosts", "--check", "-i", str(_inventory(tmp_path, url)))
    assert r.returncode == 78, r.stdout + r.stderr
    assert "percent-encode" in r.stderr and "user:***@127.0.0.1:1/repo" in r.stderr
    assert "xq7" not in r.stdout + r.stderr and "zk9" not in r.stdout + r.stderr, r.stderr


def test_whole_values_are_masked_to_the_last_at_sign():
    from fabops.validate import repository_url_problem

    assert repository_url_problem("rest:https://user:pw@host/a@b/repo") is None  # not a password's `/`
    assert repository_url_problem("rest:https://user:p/w@host:8000/x") is not None
    from fabops.redact import hidden_userinfo, redacted_url

    assert redacted_url("rest:https://user:sec/r@t@host/repo") == "rest:https://user:***@host/repo"
    assert redacted_url("rest:https://user:a b@host/repo") == "rest:https://user:***@host/repo"
    assert redacted_url("sftp:user@host:/srv") == "sftp:user@host:/srv"
    assert redacted_url("rest:https://host/repo") == "rest:https://host/repo"
    # a path may hold `@` (review 2): the authority's own `@` ends the userinfo
    assert redacted_url("rest:https://user:pw@host/a@b/repo") == "rest:https://user:***@host/a@b/repo"
    assert redacted_url("rest:https://host:8000/a@b") == "rest:https://host:8000/a@b"
    assert hidden_userinfo("http://TOKEN@127.0.0.1:1/h") == "http://***@127.0.0.1:1/h"
    assert hidden_userinfo("http://127.0.0.1:1/a@b") == "http://127.0.0.1:1/a@b"


def test_hosts_json_hides_check_userinfo_and_secret_named_values(tmp_path):
    svc = {"name": "bot", "manager": "process", "command": "x",
           "check": {"url": "http://SECRETTOK@127.0.0.1:1/h", "headers": {"Authorization": "Bearer zzz9", "Accept": "text/plain"}}}
    path = _inventory(tmp_path, "rest:https://user:ok%2Fpw@127.0.0.1:1/repo", services=[svc],
                      env={"API_TOKEN": "tok123", "LOG_LEVEL": "info"})
    r = run_cli("hosts", "--json", "-i", str(path))
    assert r.returncode == 0, r.stderr
    for secret in ("ok%2Fpw", "SECRETTOK", "zzz9", "tok123"):
        assert secret not in r.stdout, secret
    assert "text/plain" in r.stdout and '"info"' in r.stdout  # what is not secret stays readable
    svc["check"]["url"] = "http://SECRET TOK@127.0.0.1:1/h"
    path = _inventory(tmp_path, "sftp:u@h:/srv", services=[svc], env={"API_TOKEN": "$tok123"})
    r = run_cli("hosts", "--check", "-i", str(path))
    assert r.returncode == 78 and "SECRET" not in r.stderr and "tok123" not in r.stderr, r.stderr


def test_hosts_json_hides_a_clone_urls_token_and_a_password_under_any_env_name(tmp_path):
    """Review 2: app.url and an env value under an ordinary name (a
    DATABASE_URL, a webhook) were printed whole."""
    path = _inventory(tmp_path, "sftp:u@h:/srv", env={"DATABASE_URL": "postgres://u:dbpw9@h/db",
                                                        "FABOPS_DISCORD_WEBHOOK": "https://discord.com/api/webhooks/1/hk9"})
    data = yaml.safe_load(path.read_text())
    data["hosts"]["h"]["app"]["url"] = "https://ghp_TOKEN9@github.com/o/r.git"
    path.write_text(yaml.safe_dump(data))
    r = run_cli("hosts", "--json", "-i", str(path))
    assert r.returncode == 0, r.stderr
    for secret in ("dbpw9", "hk9", "ghp_TOKEN9"):
        assert secret not in r.stdout, secret
    assert "postgres://u:***@h/db" in r.stdout and "https://***@github.com/o/r.git" in r.stdout
