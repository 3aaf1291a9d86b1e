"""Whose a port is (fabops/host/listeners.py): /proc/net/tcp and tcp6
parsing from fixture text, the owner decision on a fake /proc tree, and one
real listener of this test's own process."""
import os
import socket

import pytest

from fabops.host import listeners
from fabops.host.listeners import CLOSED, OTHER, OWN, UNVERIFIED, Listener

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0BC5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41235 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0BC5 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 41240 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
   4: garbage
"""

TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0BC5 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51234 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51235 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51236 1 0000000000000000 100 0 0 10 0
   3: 00000000000000000000000001000000:0BC5 00000000000000000000000001000000:A1B2 01 00000000:00000000 00:00000000 00000000  1000        0 51237 1 0000000000000000 20 4 30 10 -1
"""


def test_ipv4_listeners_are_parsed_with_their_address_port_and_inode():
    assert listeners.parse_listeners(TCP) == [
        Listener("127.0.0.1", 3013, 41234),
        Listener("0.0.0.0", 8080, 41235),
    ]  # an ESTABLISHED socket, an inode 0 and junk are not listeners


def test_ipv6_listeners_are_parsed_with_their_address_port_and_inode():
    assert listeners.parse_listeners(TCP6) == [
        Listener("::", 3013, 51234),
        Listener("::1", 8081, 51235),
        Listener("::ffff:127.0.0.1", 3000, 51236),
    ]


def test_stat_and_fd_links_are_read_as_the_kernel_writes_them():
    assert listeners.parse_stat("4242 (python3 -m (x)) S 1 4242 4242 0 -1 4194560 ...") == (1, 4242, 4242)
    assert listeners.parse_stat("junk") is None
    assert listeners.socket_inode("socket:[41234]") == 41234
    assert listeners.socket_inode("pipe:[41234]") is None
    assert listeners.socket_inode("/dev/null") is None


def _proc(tmp_path, tcp="", tcp6="", procs=()):
    """A fake /proc: net/tcp{,6} and processes (pid, ppid, group, session,
    cmdline words, socket inodes)."""
    root = tmp_path / "proc"
    (root / "net").mkdir(parents=True)
    (root / "net" / "tcp").write_text(tcp)
    (root / "net" / "tcp6").write_text(tcp6)
    for pid, ppid, group, session, words, inodes in procs:
        d = root / str(pid)
        (d / "fd").mkdir(parents=True)
        (d / "stat").write_text(f"{pid} (x) S {ppid} {group} {session} 0 -1 0\n")
        (d / "cmdline").write_text("\0".join(words) + "\0")
        (d / "fd" / "0").symlink_to("/dev/null")
        for n, inode in enumerate(inodes, start=3):
            (d / "fd" / str(n)).symlink_to(f"socket:[{inode}]")
    return str(root)


def test_a_port_nobody_listens_on_is_closed(tmp_path):
    proc = _proc(tmp_path, TCP, TCP6, [(500, 1, 500, 500, ["python3", "app.py"], [])])
    assert listeners.port_owner(9999, 500, proc=proc).state == CLOSED


def test_a_main_pid_that_holds_every_listener_is_own_without_reading_every_process(tmp_path, monkeypatch):
    """The healthy service's usual case: its main PID listens itself. The
    answer is OWN, as the long way gives it, and the table of every
    process (a read each) is not built; when the main PID holds only some
    listeners the long way still finds a stranger beside it."""
    proc = _proc(tmp_path, TCP, TCP6, [(500, 1, 500, 500, ["python3", "app.py"], [41234, 51234]),
                                       (600, 1, 600, 600, ["other"], [])])
    long_way = listeners.port_owner(3013, 500, proc=proc)
    monkeypatch.setattr(listeners, "_table", lambda proc: pytest.fail("every process was read"))
    assert listeners.port_owner(3013, 500, proc=proc) == long_way == (3013, OWN, None, "", "")
    monkeypatch.undo()
    proc = _proc(tmp_path / "b", TCP, TCP6, [(500, 1, 500, 500, ["python3", "app.py"], [41234]),
                                             (600, 1, 600, 600, ["python3", "-m", "http.server"], [51234])])
    found = listeners.port_owner(3013, 500, proc=proc)
    assert (found.state, found.pid) == (OTHER, 600)


def test_the_services_own_listener_is_its_own_through_its_group_and_children(tmp_path):
    # the recorded pid is `sh -c`; its child in the same group holds the socket (IPv4 and IPv6)
    proc = _proc(tmp_path, TCP, TCP6, [(500, 1, 500, 500, ["sh", "-c", "x"], []),
                                       (501, 500, 500, 500, ["python3", "app.py"], [41234, 51234])])
    assert listeners.port_owner(3013, 500, proc=proc).state == OWN
    # a grandchild that left the group (its own setsid) is still a descendant
    proc = _proc(tmp_path / "b", TCP, TCP6, [(500, 1, 500, 500, ["sh"], []),
                                             (501, 500, 501, 501, ["python3", "app.py"], [41234, 51234])])
    assert listeners.port_owner(3013, 500, proc=proc).state == OWN


def test_another_process_holding_the_port_is_named(tmp_path):
    proc = _proc(tmp_path, TCP, TCP6, [
        (500, 1, 500, 500, ["python3", "app.py"], []),
        (4242, 77, 4242, 77, ["python3", "-m", "http.server", "3013"], [41234, 51234]),
    ])
    found = listeners.port_owner(3013, 500, proc=proc)
    assert (found.state, found.pid, found.command) == (OTHER, 4242, "python3 -m http.server 3013")
    assert found.held_message("bot") == \
        "port 3013 is held by another process (pid 4242: python3 -m http.server 3013), not bot"
    # the service not running (no pid): any listener is another process's
    assert listeners.port_owner(3013, None, proc=proc).pid == 4242


def test_a_holder_this_user_cannot_see_is_still_another_process(tmp_path):
    proc = _proc(tmp_path, TCP, TCP6, [(500, 1, 500, 500, ["python3", "app.py"], [41235])])
    found = listeners.port_owner(3013, 500, proc=proc)
    assert (found.state, found.pid) == (OTHER, None)
    assert "held by another process (a process this user cannot see), not bot" in found.held_message("bot")


def test_a_long_or_hostile_command_line_is_cut_and_made_printable(tmp_path):
    proc = _proc(tmp_path, TCP, "", [(4242, 1, 4242, 4242, ["python3", "\x1b[2J" + "x" * 100], [41234])])
    found = listeners.port_owner(3013, None, proc=proc)
    assert len(found.command) == listeners.COMMAND_WIDTH and found.command.endswith("…")
    assert "\x1b" not in found.command


def _unreadable(monkeypatch, pid):
    """EACCES on /proc/PID/fd of `pid` (another user's process; root reads
    every one, so the refusal is simulated)."""
    real = os.listdir

    def listdir(path):
        if str(path).endswith(f"/{pid}/fd"):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(listeners.os, "listdir", listdir)


def test_unreadable_open_files_are_owner_not_verified(tmp_path, monkeypatch):
    """EACCES on the service's /proc/PID/fd (another user's process; root
    reads every one, so the refusal is simulated): not verified, not failed."""
    proc = _proc(tmp_path, TCP, TCP6, [(500, 1, 500, 500, ["python3", "app.py"], [41234])])
    _unreadable(monkeypatch, 500)
    found = listeners.port_owner(3013, 500, proc=proc)
    assert found.state == UNVERIFIED and "cannot read" in found.why


def test_a_systemd_units_cgroup_is_the_service(tmp_path):
    # the listener is a worker in the unit's cgroup but no child of MainPID
    proc = _proc(tmp_path, TCP, TCP6, [(500, 1, 500, 500, ["gunicorn"], []),
                                       (600, 1, 600, 600, ["worker"], [41234, 51234])])
    (tmp_path / "proc" / "500" / "cgroup").write_text("0::/system.slice/bot.service\n")
    cg = tmp_path / "cg" / "system.slice" / "bot.service"
    cg.mkdir(parents=True)
    (cg / "cgroup.procs").write_text("500\n600\n")
    assert listeners.port_owner(3013, 500, systemd=True, proc=proc, root=str(tmp_path / "cg")).state == OWN
    assert listeners.port_owner(3013, 500, systemd=False, proc=proc, root=str(tmp_path / "cg")).state == OTHER


def test_what_is_left_of_a_service_not_running_is_still_its_own(tmp_path):
    """Between systemd's restarts (no MainPID) a process still in the unit's
    cgroup, and under the process back end a process in the recorded (gone)
    PID's session, are the service's: not "another process"."""
    proc = _proc(tmp_path, TCP, TCP6, [(600, 1, 600, 600, ["worker"], [41234, 51234]),
                                       (700, 1, 700, 700, ["python3", "-m", "http.server"], [])])
    (tmp_path / "proc" / "600" / "cgroup").write_text("0::/system.slice/bot.service\n")
    (tmp_path / "proc" / "700" / "cgroup").write_text("0::/user.slice/session-1.scope\n")
    assert listeners.port_owner(3013, None, systemd=True, proc=proc, unit="bot").state == OWN
    assert listeners.port_owner(3013, None, systemd=True, proc=proc, unit="api").pid == 600
    # the process back end: the recorded PID 500 is gone, its session's worker holds the port
    proc = _proc(tmp_path / "b", TCP, TCP6, [(601, 1, 601, 500, ["worker"], [41234, 51234])])
    assert listeners.port_owner(3013, 500, proc=proc).state == OWN
    assert listeners.port_owner(3013, 499, proc=proc).pid == 601


def test_a_foreign_listener_beside_the_services_own_is_another_process(tmp_path):
    """The service on 127.0.0.1:3013, a stranger on [::]:3013 (a localhost
    check may reach either): the stranger is named."""
    proc = _proc(tmp_path, TCP, TCP6, [(500, 1, 500, 500, ["python3", "app.py"], [41234]),
                                       (4242, 1, 4242, 4242, ["python3", "-m", "http.server"], [51234])])
    found = listeners.port_owner(3013, 500, proc=proc)
    assert (found.state, found.pid) == (OTHER, 4242)


def test_one_unreadable_member_does_not_hide_what_the_others_hold(tmp_path, monkeypatch):
    """A helper of the service running as another user (EACCES on its fd):
    the main PID's own sockets still answer; a listener nobody readable
    holds is then not verified, not another process's."""
    proc = _proc(tmp_path, TCP, TCP6, [(500, 1, 500, 500, ["python3", "app.py"], [41234, 51234]),
                                       (501, 500, 500, 500, ["helper"], [])])
    _unreadable(monkeypatch, 501)
    assert listeners.port_owner(3013, 500, proc=proc).state == OWN
    proc = _proc(tmp_path / "b", TCP, TCP6, [(500, 1, 500, 500, ["python3", "app.py"], [41234]),
                                             (501, 500, 500, 500, ["helper"], [])])
    found = listeners.port_owner(3013, 500, proc=proc)
    assert found.state == UNVERIFIED and "pid 501" in found.why


def test_the_json_line_round_trips_and_junk_is_not_verified():
    found = listeners.PortOwner(3013, OTHER, 4242, "python3 -m http.server 3013")
    import json

    line = json.dumps(dict(found.to_dict(), why=None))
    assert listeners.from_json(3013, line) == found
    assert listeners.from_json(3013, "").state == UNVERIFIED


@pytest.mark.parametrize("text", ["python3 -m http.server 3013", "", "".join(map(chr, range(0x300))),
                                  'q"b\\\u2028…é\U0001f600\x7f'])
def test_main_writes_its_line_as_json_dumps_does(text):
    """main's line is written without importing json (one import fewer on
    the host's python3): byte for byte what json.dumps writes."""
    import json

    for value in ({"state": text, "pid": 4242, "command": None, "why": text}, {"state": OWN, "pid": None}):
        assert listeners._json(value) == json.dumps(value)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_a_real_listener_of_this_process_is_its_own_and_anothers_for_a_stranger():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert listeners.port_owner(port, os.getpid()).state == OWN
        found = listeners.port_owner(port, None)
        assert (found.state, found.pid) == (OTHER, os.getpid())
    assert listeners.port_owner(port, os.getpid()).state == CLOSED
