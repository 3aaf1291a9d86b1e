"""The agent's warm SSH transports, and the channels it relays over them
for its runs (docs/architecture.md, "The agent").

A run is a forked child of the agent: paramiko's transport (a thread and
a cipher state) cannot be shared across fork, so the transports stay here
and a run asks for channels. Each channel is one connection to the agent's
socket; its frames carry what paramiko's Channel calls would (exec, pty,
data, shutdown_write, close) one way, and stdout, stderr and the exit
status back. proxy.py is the run's side.

Every transport is made by fabops.connection.connect, so the host-key
policy, ProxyJump and ~/.ssh/config are exactly a run's without the agent.
A cached one is used again only while the same login (hosts.yml's values
for the host, the inventory's known_hosts, ~/.ssh/config) asks for it and
known_hosts still holds the key it was opened with; a channel that will
not open on it (host rebooted, laptop slept, link cut) closes it and
connects once more."""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import Callable, Dict, NamedTuple, Optional

from ..errors import FabopsError, UnreachableError
from . import wire

PROBE_SECONDS = 3.0  # opening a channel on a cached transport: past this, it is dead


class Login(NamedTuple):
    """What connection.connect reads of a Host, sent by a run."""
    name: str
    address: str
    user: Optional[str]
    port: Optional[int]
    identity_file: Optional[str]
    is_local: bool = False
    env: dict = {}  # the inventory's env: never sent with a transport's own login (run_overrides)


class _KnownHosts(NamedTuple):
    known_hosts: Optional[str]


def login_request(host, inventory, accept_new: bool, connect_timeout: Optional[float]) -> dict:
    """A run's request for a transport to `host` (a fabops Host)."""
    return {"op": "attach",
            "login": [host.name, host.address, host.user, host.port, host.identity_file],
            "known_hosts": inventory.known_hosts if inventory is not None else None,
            "accept_new": bool(accept_new), "timeout": connect_timeout,
            "ssh_auth_sock": os.environ.get("SSH_AUTH_SOCK")}


def _ssh_config_stamp() -> list:
    path = os.path.expanduser("~/.ssh/config")
    try:
        st = os.stat(path)
    except OSError:
        return []
    return [st.st_mtime_ns, st.st_size]


# Channels one transport carries at once. OpenSSH's sshd allows 10 sessions
# per connection (MaxSessions); past this the agent opens another transport
# to the host, as twenty concurrent runs without it would open twenty.
CHANNELS_PER_TRANSPORT = 8


class Link:
    """One transport: the fabric Connection that opened it."""

    def __init__(self, cxn):
        self.cxn = cxn
        self.open_now = 0
        self.room = CHANNELS_PER_TRANSPORT  # lowered when the server refuses a session

    @property
    def transport(self):
        return self.cxn.client.get_transport()

    def alive(self) -> bool:
        t = self.transport
        return bool(t is not None and t.is_active())


class Entry:
    """One host's transports for one login: the first opened when a run
    attached, more when the runs' channels need them."""

    def __init__(self, key: str, request: dict, cxn):
        self.key, self.request = key, request
        self.links = [Link(cxn)]
        self.name = request["login"][0]
        self.since = self.last_used = time.time()
        self.channels = 0  # opened, in all

    @property
    def transport(self):
        return self.links[0].transport

    def alive(self) -> bool:
        return self.links[0].alive()

    def trusted(self) -> bool:
        """Whether known_hosts (the user's and the inventory's) still holds
        the key this transport's server showed: after `ssh-keygen -R` a run
        without the agent would be refused, so this one must connect anew."""
        import paramiko

        from ..connection import known_hosts_name, user_known_hosts

        keys = paramiko.HostKeys()
        for path in (user_known_hosts(), self.request.get("known_hosts")):
            if path and os.path.isfile(os.path.expanduser(path)):
                keys.load(os.path.expanduser(path))
        cxn = self.links[0].cxn
        shown = self.transport.get_remote_server_key()
        known = keys.lookup(known_hosts_name(cxn.host, cxn.port)) or {}
        return known.get(shown.get_name()) == shown

    def with_room(self) -> Optional[Link]:
        return next((link for link in self.links if link.alive() and link.open_now < link.room), None)

    def status(self) -> dict:
        return {"host": self.name, "alive": self.alive(), "since": self.since, "last_used": self.last_used,
                "channels": self.channels, "open": sum(link.open_now for link in self.links),
                "transports": len(self.links)}


class Transports:
    """The cache, by host name. `log` takes one line (never a secret)."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.entries: Dict[str, Entry] = {}
        self.lock = threading.Lock()  # the dicts, and each entry's links
        self.host_locks: Dict[str, threading.Lock] = {}  # one attach per host at a time: runs share its answer

    @staticmethod
    def key_of(request: dict) -> str:
        what = [request["login"], request.get("known_hosts"), request.get("accept_new"), _ssh_config_stamp()]
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]

    def attach(self, request: dict) -> Entry:
        """The transport for this login: the cached one when it is still
        the same login and trusted, else a new one (raises FabopsError)."""
        key = self.key_of(request)
        name = request["login"][0]
        with self.lock:
            host_lock = self.host_locks.setdefault(name, threading.Lock())
        with host_lock:  # twelve runs starting at once make one connection, not twelve
            with self.lock:
                entry = self.entries.get(name)
            if entry is not None and not (entry.key == key and entry.alive() and entry.trusted()):
                self.drop(name, "its login, known_hosts or ~/.ssh/config changed, or it died")
                entry = None
            if entry is None:
                entry = Entry(key, request, self._connect(request))
                with self.lock:
                    self.entries[name] = entry
                self.log(f"connected to {name}")
            return entry

    def _connect(self, request: dict):
        from ..connection import connect

        login = Login(*request["login"])
        # paramiko asks the ssh-agent the run names (a new login session has
        # a new one). One user's runs name the same one, so setting it for
        # the process is enough: no lock across hosts' handshakes.
        _set_env("SSH_AUTH_SOCK", request.get("ssh_auth_sock"))
        return connect(login, _KnownHosts(request.get("known_hosts")),  # type: ignore[arg-type]
                       accept_new=request.get("accept_new", False), connect_timeout=request.get("timeout"))

    def open_channel(self, request: dict, timeout: Optional[float]):
        """A session channel to the host: on a transport with room, or on
        one more. A transport that does not open one within PROBE_SECONDS
        is dead (host rebooted, laptop slept, link cut): the host's
        transports are closed and it is connected once more, never waited
        on. A server that refuses the session (its MaxSessions) leaves the
        transport alive and full."""
        import paramiko

        entry = self.attach(request)
        reconnected = False
        while True:
            with self.lock:
                link = entry.with_room()
                if link is not None:
                    link.open_now += 1  # reserved while it opens
            if link is None:
                link = self._grow(entry, request)
            try:
                chan = link.transport.open_session(timeout=min(timeout or PROBE_SECONDS, PROBE_SECONDS))
            except paramiko.ChannelException:  # the server said no: this transport is full
                with self.lock:
                    link.open_now -= 1
                    link.room = max(1, link.open_now)
                continue
            except Exception as exc:  # noqa: BLE001 - every way a dead link shows
                if reconnected:
                    raise
                self.drop(entry.name, f"a channel would not open ({exc.__class__.__name__})")
                entry, reconnected = self.attach(request), True
                continue
            entry.channels += 1
            entry.last_used = time.time()
            return entry, link, chan

    def _grow(self, entry: Entry, request: dict) -> Link:
        link = Link(self._connect(request))
        link.open_now = 1
        with self.lock:
            entry.links.append(link)
        self.log(f"opened transport {len(entry.links)} to {entry.name} (the others are full)")
        return link

    def release(self, entry: Entry, link: Link) -> None:
        with self.lock:
            link.open_now -= 1
        entry.last_used = time.time()

    def drop(self, name: str, why: str) -> bool:
        with self.lock:
            entry = self.entries.pop(name, None)
        if entry is not None:
            self.log(f"closed the transport to {name}: {why}")
            self._close(entry)
        return entry is not None

    def close_all(self) -> None:
        for name in list(self.entries):
            self.drop(name, "the agent is stopping")

    @staticmethod
    def _close(entry: Entry) -> None:
        from ..connection import close_quietly

        for link in entry.links:
            close_quietly(link.cxn)

    def status(self) -> list:
        with self.lock:
            return [e.status() for e in self.entries.values()]


def _set_env(name: str, value: Optional[str]) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def error_frame(exc: BaseException) -> dict:
    """An error a run raises again as it is: same class, text and host."""
    if isinstance(exc, FabopsError):
        return {"error": {"kind": type(exc).__name__, "text": exc.args[0] if exc.args else str(exc),
                          "host": getattr(exc, "host", None)}}
    return {"error": {"kind": "UnreachableError", "text": f"{exc.__class__.__name__}: {exc}", "host": None}}


class Relay:
    """One relayed channel: frames from the run drive `chan`; its stdout,
    stderr and exit status go back as frames."""

    def __init__(self, conn, chan, entry: Entry, link: Link, transports: Transports):
        self.conn, self.chan, self.entry, self.link, self.transports = conn, chan, entry, link, transports
        self.sending = threading.Lock()

    def send(self, header: dict, payload: bytes = b"") -> None:
        with self.sending:
            try:
                wire.send(self.conn, header, payload)
            except OSError:
                pass  # the run is gone; its frames stop mattering

    def serve(self) -> None:
        pumps = [threading.Thread(target=self._pump, args=(self.chan.recv, "out"), daemon=True),
                 threading.Thread(target=self._pump, args=(self.chan.recv_stderr, "err"), daemon=True)]
        for p in pumps:
            p.start()
        threading.Thread(target=self._status, args=(pumps,), daemon=True).start()
        try:
            while True:
                header, payload, _ = wire.recv(self.conn)
                if header is None or not self._apply(header, payload):
                    break
        except (OSError, wire.WireError):
            pass
        finally:
            self.transports.release(self.entry, self.link)
            try:
                self.chan.close()
            except Exception:  # noqa: BLE001 - a channel on a dead link
                pass

    def _apply(self, h: dict, payload: bytes) -> bool:
        """One request of the run's; False when it closed the channel."""
        c = self.chan
        op = h.get("c")
        if op == "data":
            c.sendall(payload)
        elif op == "eof":
            c.shutdown_write()
        elif op == "resize":
            c.resize_pty(width=h["width"], height=h["height"])
        elif op == "close":
            return False
        else:
            try:
                if op == "exec":
                    c.exec_command(h["cmd"])
                elif op == "pty":
                    c.get_pty(term=h.get("term", "vt100"), width=h.get("width", 80), height=h.get("height", 24))
                elif op == "env":
                    c.update_environment(h["env"])
                elif op == "subsystem":
                    c.invoke_subsystem(h["name"])
                else:
                    raise ValueError(f"unknown request {op!r}")
            except Exception as exc:  # noqa: BLE001 - the run raises it as paramiko would
                self.send({"c": "fail", "text": str(exc) or exc.__class__.__name__})
            else:
                self.send({"c": "ok"})
        return True

    def _pump(self, read, kind: str) -> None:
        while True:
            try:
                data = read(65536)
            except Exception:  # noqa: BLE001 - the link died under the read
                data = b""
            if not data:
                self.send({"c": kind + "_eof"})
                return
            self.send({"c": kind}, data)

    def _status(self, pumps) -> None:
        for p in pumps:
            p.join()
        # the exit status may come after the end of output (a command that
        # closed its stdout and went on); paramiko's call waits for it, and
        # gives -1 when the channel closed without one
        status = self.chan.recv_exit_status()
        # a channel that ended because its transport did is a lost link to
        # the run (its transport stand-in goes inactive), as to paramiko
        lost = status == -1 and not self.link.alive()
        self.send({"c": "exit", "status": status, "lost": lost})


def unreachable(name: str, text: str) -> dict:
    return error_frame(UnreachableError(text, host=name))
