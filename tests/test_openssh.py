"""fabops/openssh.py without a host: the ssh options that carry fabops'
host-key policy, when the path is used, and how ssh's failures map onto
fabops' errors (docs/errors.md, exit 3)."""
import base64
import hashlib
from types import SimpleNamespace

import pytest

from fabops import openssh
from fabops.errors import HostKeyError, UnreachableError


def Host(name, address, user=None, port=None, identity_file=None):
    """What openssh reads of an inventory Host."""
    return SimpleNamespace(name=name, address=address, user=user, port=port, identity_file=identity_file,
                           is_local=False)

BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 36).decode()


def cxn(tmp_path, accept_new=False, seen=None):
    host = Host(name="h1", address="web", user="deploy", port=2222)
    seen = seen or {"user": ["deploy"], "hostname": ["10.0.0.5"], "port": ["2222"]}
    return openssh.OpenSSH(host, seen, ["-F", "/cfg"], [str(tmp_path / "kh"), "/team/kh"], accept_new, 7.0)


def options(argv):
    return dict(argv[i + 1].split("=", 1) for i, w in enumerate(argv) if w == "-o")


def test_policy_as_options(tmp_path):
    argv = cxn(tmp_path).argv("uptime")
    o = options(argv)
    assert argv[:7] == ["ssh", "-F", "/cfg", "-T", "-l", "deploy", "-p"] and argv[-3:] == ["--", "web", "uptime"]
    assert o["StrictHostKeyChecking"] == "yes" and o["BatchMode"] == "yes" and o["ConnectTimeout"] == "7"
    assert o["UserKnownHostsFile"] == f"{tmp_path / 'kh'} /team/kh" and o["GlobalKnownHostsFile"] == "/dev/null"
    assert o["HashKnownHosts"] == "no" and o["UpdateHostKeys"] == "no"
    assert options(cxn(tmp_path, accept_new=True).argv("x"))["StrictHostKeyChecking"] == "accept-new"


def test_no_variable_reaches_the_host_that_paramiko_would_not_send(monkeypatch):
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/agent.sock")
    env = openssh.environment()
    assert "LANG" not in env and "LC_ALL" not in env and env["SSH_AUTH_SOCK"] == "/run/agent.sock"


def test_known_files_are_fabops_own(tmp_path, isolated_home):
    team = tmp_path / "team_kh"
    team.write_text("")
    default = {"userknownhostsfile": [openssh.DEFAULT_KNOWN]}
    home = str(isolated_home / ".ssh" / "known_hosts")
    assert openssh._known_files(default, str(team)) == [home, str(team)]
    named = {"userknownhostsfile": [f"{team} /nonexistent"]}
    assert openssh._known_files(named, None) == [home, str(team)]


def test_not_used_where_it_would_differ(monkeypatch, tmp_path, isolated_home):
    host = Host(name="h1", address="web")
    monkeypatch.setenv("FABOPS_OPENSSH", "0")
    assert openssh.plan(host, None, accept_new=False, connect_timeout=None) is None
    monkeypatch.delenv("FABOPS_OPENSSH")
    monkeypatch.setenv("PATH", str(tmp_path))  # no ssh
    assert openssh.plan(host, None, accept_new=False, connect_timeout=None) is None
    # $HOME is not the passwd home and has its own config: ssh would read another one
    (isolated_home / ".ssh" / "config").write_text("Host web\n  Port 2\n")
    assert openssh.config_args() is None
    cfg = tmp_path / "cfg"
    cfg.write_text("Host web\n  ProxyJump bastion\n")
    monkeypatch.setenv("FABOPS_SSH_CONFIG", str(cfg))
    assert openssh.config_args() == ["-F", str(cfg)]
    monkeypatch.setattr(openssh, "resolved", lambda host, config: {"proxyjump": ["bastion"]})
    monkeypatch.setattr(openssh.shutil, "which", lambda name: "/usr/bin/ssh")
    assert openssh.plan(host, None, accept_new=False, connect_timeout=None) is None


def test_changed_key_in_connection_words(tmp_path):
    c = cxn(tmp_path)
    known = tmp_path / "kh"
    known.write_text(f"other ssh-rsa AAAA\n[10.0.0.5]:2222 ssh-ed25519 {BLOB}\n")
    recorded = "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(BLOB)).digest()).decode().rstrip("=")
    stderr = ("@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
              "The fingerprint for the ED25519 key sent by the remote host is\nSHA256:offeredKEY.\n"
              f"Offending ED25519 key in {known}:2\nHost key verification failed.\n")
    with pytest.raises(HostKeyError) as err:
        openssh.failure(stderr, c)
    assert str(err.value).startswith(f"h1: HOST KEY CHANGED for [10.0.0.5]:2222: known_hosts has {recorded}, "
                                     "the server offered SHA256:offeredKEY. Refusing")
    with pytest.raises(openssh.Redo):  # the named line is gone: paramiko says it
        openssh.failure(stderr.replace(":2\n", ":9\n"), c)


@pytest.mark.parametrize("stderr, said", [
    ("ssh: connect to host 10.0.0.5 port 2222: Connection refused\n",
     "cannot connect to deploy@10.0.0.5:2222: Connection refused"),
    ("ssh: connect to host 10.0.0.5 port 2222: Connection timed out\n",
     "timed out connecting to deploy@10.0.0.5:2222 after 7 s"),
    ("Connection timed out during banner exchange\nConnection to 10.0.0.5 port 2222 timed out\n",
     "cannot connect to deploy@10.0.0.5:2222: no SSH answer within 7 s (Connection timed out during banner exchange)"),
    ("ssh: Could not resolve hostname nowhere: Name or service not known\n",
     "cannot resolve '10.0.0.5': Name or service not known"),
])
def test_unreachable_in_connection_words(tmp_path, stderr, said):
    with pytest.raises(UnreachableError) as err:
        openssh.failure(stderr, cxn(tmp_path))
    assert str(err.value) == "h1: " + said and err.value.exit_code == 3


@pytest.mark.parametrize("stderr", [
    "No ED25519 host key is known for [10.0.0.5]:2222 and you have requested strict checking.\n"
    "Host key verification failed.\n",
    "deploy@10.0.0.5: Permission denied (publickey).\n",
    "kex_exchange_identification: Connection closed by remote host\nssh: Connection closed by 10.0.0.5 port 2222\n",
])
def test_what_paramiko_words_is_redone(tmp_path, stderr):
    with pytest.raises(openssh.Redo):
        openssh.failure(stderr, cxn(tmp_path))


def test_a_command_exit_255_is_no_failure(tmp_path):
    assert openssh.failure("my script failed\n", cxn(tmp_path)) is None
