"""The Target (docs/architecture.md, "The Target"): the same calls behave
the same on this machine (an invoke.Context) and over SSH (a real sshd on
loopback), and differ only where they must (paths, transport)."""
import sys
import socket
import time
from contextlib import contextmanager

import pytest

from fabops import inventory
from fabops.errors import CommandFailed, SudoError
from fabops.shell import path, raw, sh
from fabops.target import Target


@pytest.fixture(params=["local", "ssh"])
def target(request, tmp_path):
    """A Target on this machine, or on a real sshd (its own private home)."""
    if request.param == "local":
        from fabops.connection import local_context

        host = inventory.loads(f"hosts:\n  here: {{connection: local, app: {{path: {tmp_path}/app}}}}\n",
                               str(tmp_path / "hosts.yml")).hosts["here"]
        yield Target.of(local_context(host), host)
        return
    with ssh_target(request.getfixturevalue("ssh_host"), tmp_path / "hosts.yml") as t:
        yield t


@contextmanager
def ssh_target(ssh_host, hosts_yml):
    """A Target on a real sshd whose hosts.yml entry (written to `hosts_yml`)
    holds only its address and key; the connection is closed on the way out."""
    from fabops.connection import close_quietly, connect
    from tests.conftest import write_inventory

    inv = inventory.load(str(write_inventory(hosts_yml, {"h1": ssh_host.inventory_entry()})))
    cxn = connect(inv.hosts["h1"], inv)
    try:
        yield Target.of(cxn, inv.hosts["h1"])
    finally:
        close_quietly(cxn)


def test_run_checks_and_fails_in_the_one_format(target):
    assert target.run(raw("echo hi"), "saying hi").stdout == "hi\n"
    with pytest.raises(CommandFailed) as info:
        target.run(raw("echo first >&2; echo 'the real reason' >&2; exit 3"), "a step")
    assert info.value.message == "a step failed: the real reason"
    assert info.value.host == target.name
    silent = target.run(raw("exit 4"), check=False)
    assert silent.exited == 4
    with pytest.raises(CommandFailed, match="a quiet step failed: exit 4"):
        target.run(raw("exit 4"), "a quiet step")


def test_reads_and_tests(target):
    assert target.ok(raw("true")) and not target.ok(raw("false"))
    assert target.output(raw("printf 'a\\nb'; exit 1")) == "a\nb"  # whatever the exit
    assert target.run(sh("printf %s \"$X\""), env={"X": "a b; $(id)"}).stdout == "a b; $(id)"


def test_a_plain_string_never_runs(target):
    with pytest.raises(TypeError):
        target.run("echo $(id)")


def test_sudo_that_wants_a_password_names_the_missing_rule(target):
    """A stub sudo on PATH answers as sudo -n does without a rule."""
    stub = raw("d=$(mktemp -d); printf '#!/bin/sh\\necho \"sudo: a password is required\" >&2; exit 1\\n' > $d/sudo; "
               "chmod +x $d/sudo; echo $d")
    bin_dir = target.run(stub, "making a stub").stdout.strip()
    with pytest.raises(SudoError) as info:
        target.sudo(["systemctl", "restart", "bot.service"], env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert "systemctl restart bot.service" in info.value.message and "NOPASSWD" in info.value.message


def test_files_go_both_ways(target, tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("payload\n")
    target.run(sh("mkdir -p {d}", d=path("~/fabops-target-test")), "making the directory")
    target.put(str(src), "fabops-target-test/in.txt")  # relative: under the login home
    assert target.run(sh("cat {f}", f=path("~/fabops-target-test/in.txt")), "reading").stdout == "payload\n"
    back = tmp_path / "back.txt"
    target.get("~/fabops-target-test/in.txt", str(back))
    assert back.read_text() == "payload\n"
    target.run(sh("rm -rf {d}", d=path("~/fabops-target-test")), "cleaning up")
    with pytest.raises(OSError):
        target.put(str(src), "fabops-target-test/in.txt")  # no directory: refused the same way on both


def test_paths_are_the_hosts_own(target):
    p = target.paths
    if target.is_local:
        assert p.state.startswith("/") and "~" not in p.state  # expanded: Python opens it here
        assert target.local_path("~/x") is not None and target.transport is None
    else:
        assert p.state.startswith("~/")  # the host's shell expands it
        assert target.local_path("~/x") is None and target.transport.is_active()
    assert p.state.endswith("/state.json") and p.lock.endswith("/lock") and "//" not in p.history
    assert target.alive


def test_stream_reads_as_it_comes_and_closing_ends_the_command(target):
    """One interface for a child process and an SSH channel: recv with a
    timeout, then close, which ends the remote (or local) command."""
    marker = f"fabops-stream-{time.monotonic_ns()}"
    pattern = "[f]" + marker[1:]  # matches the stream's command, never pgrep's own shell
    chan = target.stream(sh("echo ready; exec sh -c 'sleep 300; :' {m}", m=marker), pty=True, timeout=10)
    chan.settimeout(10)
    got = b""
    while b"ready" not in got:
        got += chan.recv(1024)
    chan.settimeout(0.2)
    with pytest.raises(socket.timeout):
        chan.recv(1024)  # nothing more: a quiet stream times out, it does not end
    chan.close()
    deadline = time.monotonic() + 10
    while target.ok(sh("pgrep -f {p}", p=pattern)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the hang-up reaches the remote side asynchronously
    assert not target.ok(sh("pgrep -f {p}", p=pattern)), "closing the stream left its command running"


def test_a_finished_stream_ends_with_its_exit_status(target):
    chan = target.stream(raw("echo done; exit 7"), timeout=10)
    chan.settimeout(10)
    out = b""
    while True:
        data = chan.recv(1024)
        if not data:
            break
        out += data
    assert out.strip() == b"done"
    assert chan.recv(1024) == b""  # and again: the end stays the end
    assert chan.recv_exit_status() == 7
    chan.close()


def test_the_inventorys_env_reaches_every_ssh_command_quoted(ssh_host, tmp_path):
    """The env reaches SSH commands from fabops' env.sh (setup and every
    host-side run write it), quoted: Fabric's own `export K=V &&` had V
    unquoted (a value with a space broke every command, `$(...)` ran) and
    in the argv `ps` shows."""
    from fabops.connection import close_quietly, connect
    from fabops.setup import put_file
    from fabops.shell import env_file_text
    from tests.conftest import write_inventory

    value = "--a --b; $(echo injected) 'q'"
    entry = {**ssh_host.inventory_entry(), "env": {"NODE_OPTIONS": value}}
    inv = inventory.load(str(write_inventory(tmp_path / "hosts.yml", {"h1": entry})))
    host = inv.hosts["h1"]
    cxn = connect(host, inv)
    try:
        t = Target.of(cxn, host)
        assert t.run(raw('printf %s "${NODE_OPTIONS-unset}"'), "before env.sh").stdout == "unset"
        put_file(t, host, host.paths.env_sh, env_file_text(host.env), mode="0600", root=False)
        assert t.run(raw('printf %s "$NODE_OPTIONS"'), "reading the env").stdout == value
        assert t.run(raw('printf %s "$NODE_OPTIONS|$Y"'), "with a call's env too", env={"Y": "a b"}).stdout \
            == value + "|a b"
    finally:
        close_quietly(cxn)


def test_of_wraps_once():
    from invoke import Context

    t = Target.of(Context())
    assert Target.of(t) is t and Target(t).c is t.c and t.is_local


def test_stdin_arrives_byte_for_byte_then_end_of_file(target):
    """`stdin=` is the command's input, then EOF: 1 MB of text (multibyte
    characters, control characters, no final newline) arrives unchanged and
    `sha256sum` ends. The timeout only bounds a hang; nothing is timed."""
    import hashlib

    text = ("h\u00e9llo \u20ac\U0001f600 '$(id)' \\ \"\t\r\x01\n" * 40000)[:-1]
    data = text.encode("utf-8")
    assert len(data) > 1_000_000
    out = target.run(raw("sha256sum; echo end"), "hashing stdin", stdin=text, timeout=120).stdout.split()
    assert out == [hashlib.sha256(data).hexdigest(), "-", "end"]
    assert target.run(raw("wc -c"), "counting", stdin=data, timeout=120).stdout.strip() == str(len(data))  # bytes too
    assert target.run(raw("cat; echo end"), "reading nothing", stdin="", timeout=60).stdout == "end\n"


def test_a_command_that_reads_none_of_its_stdin_still_ends(target):
    big = "x" * 3_000_000  # more than an SSH channel's window: the writer must stop
    try:
        assert target.run(raw("exit 3"), "ignoring stdin", stdin=big, check=False, timeout=120).exited == 3
    except CommandFailed as exc:  # over SSH, the channel may close under the writer
        assert "before reading all of its input" in exc.message


def test_without_stdin_a_command_gets_none(target):
    """The default is unchanged: no input is sent, nor is stdin closed
    (fabops' commands never read it), so `read` waits until the bound."""
    from invoke.exceptions import CommandTimedOut

    with pytest.raises(CommandTimedOut):
        target.run(raw("read -r line; echo got"), "reading", timeout=1)


@pytest.mark.parametrize("word, parsed", [
    ("jump", (None, "jump", None)),
    ("deploy@jump", ("deploy", "jump", None)),
    ("deploy@jump:2222", ("deploy", "jump", 2222)),
    ("ssh://jump", (None, "jump", None)),
    ("ssh://deploy@jump:2222", ("deploy", "jump", 2222)),
    ("SSH://deploy@jump:2222/", ("deploy", "jump", 2222)),
    ("[::1]:2222", (None, "::1", 2222)),
    ("ssh://deploy@[2001:db8::7]:22", ("deploy", "2001:db8::7", 22)),
    ("[::1]", (None, "::1", None)),
    ("fe80::1", (None, "fe80::1", None)),
    ("a@b@jump", ("a@b", "jump", None)),
])
def test_a_proxyjump_hop_is_read_as_ssh_reads_it(word, parsed):
    from fabops.connection import parse_jump

    assert parse_jump(word) == parsed


@pytest.mark.parametrize("word", ["jump:0", "jump:99999", "jump:ssh", "[::1", "[::1]x", "@jump", "ssh://", "deploy@"])
def test_a_malformed_proxyjump_hop_is_a_usage_error_naming_it(word):
    from fabops.connection import parse_jump
    from fabops.errors import UsageError

    with pytest.raises(UsageError, match="ProxyJump hop"):
        parse_jump(word, "find-to-do")


def test_is_local_holds_while_another_thread_imports_fabric(monkeypatch):
    """monitor -H local,find-to-do: one host's thread imports fabric while
    the other asks whether its context is local. A half-imported
    fabric.connection (no Connection yet) must not make that question an
    AttributeError (it was exit 70 for `local`)."""
    import types

    from fabric import Connection
    from invoke import Context

    half = types.ModuleType("fabric.connection")  # as sys.modules holds it mid-import
    monkeypatch.setitem(sys.modules, "fabric.connection", half)
    assert Target(Context()).is_local
    assert not Target(Connection("example.invalid")).is_local

    class Ours(Connection):  # a subclass (the checked connection) is SSH too
        pass

    assert not Target(Ours("example.invalid")).is_local
