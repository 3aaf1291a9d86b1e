"""fabops/openssh.py without a host: the ssh options that carry fabops'
host-key policy, when the path is used, and how ssh's failures map onto
fabops' errors (docs/errors.md, exit 3)."""
import base64
import hashlib
import time
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
    # what an ssh config could add that paramiko never does is off
    assert {k: o[k] for k in openssh.NEUTRAL} == {
        "KnownHostsCommand": "none", "ClearAllForwardings": "yes", "ForwardX11": "no", "ForwardAgent": "no",
        "PermitLocalCommand": "no", "Tunnel": "no", "RemoteCommand": "none"}


def test_this_ssh_knows_the_neutral_options_and_they_win(tmp_path):
    """ssh -G with a config that forwards, runs commands and asks a command
    for host keys: the command line's options win; SetEnv stays (plan then
    leaves the host to paramiko)."""
    cfg = tmp_path / "cfg"
    cfg.write_text("Host web\n  RemoteForward 9000 127.0.0.1:22\n  LocalForward 9001 127.0.0.1:22\n"
                   "  DynamicForward 9002\n  ForwardX11 yes\n  ForwardAgent yes\n  Tunnel yes\n"
                   "  KnownHostsCommand /bin/echo %H\n  PermitLocalCommand yes\n  LocalCommand touch /x\n"
                   "  RemoteCommand id\n  SetEnv LANG=C\n")
    seen = openssh.resolved(Host(name="h1", address="web", user="deploy"), ["-F", str(cfg)])
    assert seen is not None, "this machine's ssh refused one of openssh.NEUTRAL"
    for key in ("remoteforward", "localforward", "dynamicforward", "knownhostscommand", "remotecommand"):
        assert key not in seen, key
    assert seen["clearallforwardings"] == ["yes"] and seen["forwardx11"] == ["no"]
    assert seen["forwardagent"] == ["no"] and seen["permitlocalcommand"] == ["no"] and seen["tunnel"] == ["false"]
    assert openssh._set(seen, "setenv")


def test_an_ssh_that_refuses_an_option_leaves_it_to_paramiko(monkeypatch):
    """An OpenSSH older than 8.5 does not know KnownHostsCommand: ssh -G
    exits 255, and plan returns None."""
    calls = []

    def refuse(argv, **kw):
        calls.append(argv)
        return SimpleNamespace(returncode=255, stdout="", stderr="Bad configuration option: knownhostscommand")

    monkeypatch.setattr(openssh.subprocess, "run", refuse)
    assert openssh.resolved(Host(name="h1", address="web"), []) is None
    assert "KnownHostsCommand=none" in calls[0] and "RemoteCommand=none" in calls[0]


def test_setenv_or_an_unsure_user_leaves_it_to_paramiko(monkeypatch, isolated_home):
    import getpass
    import pwd

    base = {"user": ["deploy"], "hostname": ["10.0.0.5"], "port": ["22"]}
    monkeypatch.setattr(openssh.shutil, "which", lambda name: "/usr/bin/ssh")
    monkeypatch.setattr(openssh, "config_args", lambda: [])
    monkeypatch.setattr(openssh, "resolved", lambda host, config: {**base, "setenv": ["LANG=C"]})
    assert openssh.plan(Host(name="h1", address="web"), None, accept_new=False, connect_timeout=None) is None
    me = pwd.getpwuid(openssh.os.getuid()).pw_name
    monkeypatch.setattr(getpass, "getuser", lambda: "someone-else")
    assert openssh._user(Host(name="h1", address="web", user="deploy"), base) == "deploy"  # the inventory's
    assert openssh._user(Host(name="h1", address="web"), base) == "deploy"  # the config's User
    # ssh -G says the passwd name: no User in the config, or one equal to it; fabric takes $USER then
    assert openssh._user(Host(name="h1", address="web"), {**base, "user": [me]}) is None
    monkeypatch.setattr(getpass, "getuser", lambda: me)
    assert openssh._user(Host(name="h1", address="web"), {**base, "user": [me]}) == me
    monkeypatch.setattr(openssh, "resolved", lambda host, config: {**base, "user": [me]})
    assert openssh.plan(Host(name="h1", address="web"), None, accept_new=False, connect_timeout=None).user == me


def _hashed(name, salt=b"s" * 20):
    import hmac

    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_known_hosts_both_clients_read_alike(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    name = "[10.0.0.5]:2222"
    one.write_text(f"# mine\n{name} ssh-ed25519 {BLOB}\nother ssh-ed25519 {BLOB}\n")
    two.write_text(f"{name} ssh-rsa AAAA\n")
    files = [str(one), str(two), str(tmp_path / "absent")]
    assert openssh.trusted_alike(files, name)
    # a second ed25519 key for the host: ssh accepts either, paramiko checks one
    two.write_text(f"{_hashed(name)} ssh-ed25519 AAAA\n")
    assert not openssh.trusted_alike(files, name)
    two.write_text(f"{_hashed('[10.0.0.6]:2222')} ssh-ed25519 AAAA\n10.0.0.?,!{name} ssh-ed25519 AAAA\n"
                   "[10.0.0.5]:222? ssh-rsa AAAA\n")
    assert openssh.trusted_alike(files, name)  # another host, a negated name, another type
    two.write_text("[10.0.0.5]:* ssh-ed25519 AAAA\n")
    assert not openssh.trusted_alike(files, name)
    # [..] is literal, not a character class
    assert openssh._matches("[10.0.0.5]:2222", name) and not openssh._matches("[10.0.0.5]:2222", "1:2222")
    for marker in ("@cert-authority *.example.com", "@revoked other"):
        two.write_text(f"{marker} ssh-ed25519 AAAA\n")
        assert not openssh.trusted_alike(files, name)


def test_accept_new_leaves_nothing_when_the_connection_fails(tmp_path, isolated_home, monkeypatch):
    """paramiko creates ~/.ssh and known_hosts only when it records a key."""
    import shutil as sh

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text("#!/bin/sh\necho 'ssh: connect to host 10.0.0.5 port 2222: Connection refused' >&2\n"
                                "exit 255\n")
    (bindir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    sh.rmtree(isolated_home / ".ssh")
    known = isolated_home / ".ssh" / "known_hosts"
    host = Host(name="h1", address="web", user="deploy", port=2222)
    c = openssh.OpenSSH(host, {"user": ["deploy"], "hostname": ["10.0.0.5"], "port": ["2222"]}, [],
                        [str(known)], True, 7.0)
    with pytest.raises(UnreachableError):
        c.run("true")
    assert not (isolated_home / ".ssh").exists()
    # ssh recorded the key: the file stays, 0600 as connection.record_host_key makes it
    (bindir / "ssh").write_text(f"#!/bin/sh\necho '[10.0.0.5]:2222 ssh-ed25519 {BLOB}' >> {known}\n")
    assert c.run("true").exited == 0
    assert known.read_text().startswith("[10.0.0.5]") and (known.stat().st_mode & 0o777) == 0o600


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
    # the port took TCP and closed or reset it before any banner: paramiko's "no SSH answer"
    ("kex_exchange_identification: read: Connection reset by peer\nConnection reset by 10.0.0.5 port 2222\n",
     "cannot connect to deploy@10.0.0.5:2222: no SSH answer within 7 s "
     "(kex_exchange_identification: read: Connection reset by peer)"),
    ("kex_exchange_identification: Connection closed by remote host\nConnection closed by 10.0.0.5 port 2222\n",
     "cannot connect to deploy@10.0.0.5:2222: no SSH answer within 7 s "
     "(kex_exchange_identification: Connection closed by remote host)"),
    ("ssh: Connection closed by 10.0.0.5 port 2222\n",
     "cannot connect to deploy@10.0.0.5:2222: no SSH answer within 7 s (Connection closed by 10.0.0.5 port 2222)"),
])
def test_unreachable_in_connection_words(tmp_path, stderr, said):
    with pytest.raises(UnreachableError) as err:
        openssh.failure(stderr, cxn(tmp_path))
    assert str(err.value) == "h1: " + said and err.value.exit_code == 3


@pytest.mark.parametrize("stderr", [
    "No ED25519 host key is known for [10.0.0.5]:2222 and you have requested strict checking.\n"
    "Host key verification failed.\n",
    "deploy@10.0.0.5: Permission denied (publickey).\n",
])
def test_what_paramiko_words_is_redone(tmp_path, stderr):
    with pytest.raises(openssh.Redo):
        openssh.failure(stderr, cxn(tmp_path))


def test_a_command_exit_255_is_no_failure(tmp_path):
    assert openssh.failure("my script failed\n", cxn(tmp_path)) is None


def test_accept_new_keeps_the_file_while_another_host_still_runs(tmp_path, isolated_home, monkeypatch):
    """Two hosts of one monitor at once (fanout's threads): the first one's
    failed connection must not remove the ~/.ssh and known_hosts that the
    second one's ssh is about to record its key in. Each stub waits on a
    file the other side makes (no timing)."""
    import shutil as sh
    import threading

    bindir = tmp_path / "bin"
    bindir.mkdir()
    sig = tmp_path / "sig"
    sig.mkdir()
    known = isolated_home / ".ssh" / "known_hosts"
    wait = 'n=0; while [ ! -e "$1" ] && [ $n -lt 2000 ]; do sleep 0.01; n=$((n+1)); done'
    (bindir / "ssh").write_text(
        f"#!/bin/sh\nwait_for() {{ {wait}; }}\n"
        f'case "$*" in\n'
        f'  *refused*) touch {sig}/a; wait_for {sig}/b\n'
        f"    echo 'ssh: connect to host refused port 22: Connection refused' >&2; exit 255;;\n"
        f'  *) touch {sig}/b; wait_for {sig}/go\n'
        f"    echo '[slow]:22 ssh-ed25519 {BLOB}' >> {known} || exit 9;;\n"
        f"esac\n")
    (bindir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    sh.rmtree(isolated_home / ".ssh")

    def cxn(address):
        return openssh.OpenSSH(Host(name=address, address=address, user="deploy"),
                               {"user": ["deploy"], "hostname": [address], "port": ["22"]}, [], [str(known)], True, 30.0)

    results = {}

    def run(address):
        try:
            results[address] = cxn(address).run("true").exited
        except UnreachableError:
            results[address] = "unreachable"

    first = threading.Thread(target=run, args=("refused",))
    second = threading.Thread(target=run, args=("slow",))
    first.start()
    for _ in range(3000):
        if (sig / "a").exists():
            break
        time.sleep(0.01)
    second.start()
    first.join(60)
    (sig / "go").touch()  # the refused host's run is over, its clean-up done
    second.join(60)
    assert results == {"refused": "unreachable", "slow": 0}, results
    assert known.read_text().startswith("[slow]:22") and (known.stat().st_mode & 0o777) == 0o600
    assert (known.parent.stat().st_mode & 0o777) == 0o700
