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
MAX_TRIES = 12  # channel opens for one request (transports full, one reconnect)


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
    from ..connection import ssh_config_file

    identity = os.path.abspath(os.path.expanduser(host.identity_file)) if host.identity_file else None
    return {"op": "attach",  # paths as this run (its directory, its HOME) reads them
            "login": [host.name, host.address, host.user, host.port, identity],
            "home": os.environ.get("HOME"),
            "known_hosts": inventory.known_hosts if inventory is not None else None,
            "accept_new": bool(accept_new), "timeout": connect_timeout,
            "ssh_config": ssh_config_file(),  # the run's $FABOPS_SSH_CONFIG: another file, another login
            "ssh_auth_sock": os.environ.get("SSH_AUTH_SOCK")}


def _ssh_config_stamp(path: Optional[str]) -> list:
    path = path or os.path.expanduser("~/.ssh/config")
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
    """One host's transports for one login (its key): the first opened when
    a run attached, more when the runs' channels need them. A retired entry
    (its login changed, its link died, `agent forget`) takes no new channel
    and is closed when its last open one ends: a run never loses its
    channels because another run asked differently."""

    def __init__(self, key: str, request: dict, cxn):
        self.key, self.request = key, request
        self.links = [Link(cxn)]
        self.name = request["login"][0]
        self.since = self.last_used = time.time()
        self.channels = 0  # opened, in all
        self.retired = False
        self.probing = threading.Lock()  # paramiko's global_request is not safe to call concurrently

    @property
    def transport(self):
        return self.links[0].transport

    def alive(self) -> bool:
        return self.links[0].alive()

    def open_now(self) -> int:
        return sum(link.open_now for link in self.links)

    def trusted(self) -> bool:
        """Whether known_hosts (the user's and the inventory's) still holds
        the key this transport's server showed, and every jump host's: after
        `ssh-keygen -R` a run without the agent would be refused, so this one
        must connect anew."""
        import paramiko

        from ..connection import hop_chain, known_hosts_files, known_hosts_name

        cxn = self.links[0].cxn
        for one in hop_chain(cxn) + [cxn]:
            keys = paramiko.HostKeys()
            for path in known_hosts_files(one, self.request.get("known_hosts")):
                keys.load(path)
            transport = one.client.get_transport()
            shown = transport.get_remote_server_key() if transport is not None else None
            known = keys.lookup(known_hosts_name(one.host, one.port)) or {}
            if shown is None or known.get(shown.get_name()) != shown:
                return False
        return True

    def answers(self, timeout: float) -> bool:
        """Whether the host answers a keepalive within `timeout`. OpenSSH
        answers keepalive@openssh.com with a refusal, and paramiko returns
        None for it: any answer counts, as logs' own probe counts it. One
        probe at a time per transport; callers in the meantime share it."""
        if not self.alive():
            return False
        if not self.probing.acquire(blocking=False):
            with self.probing:  # another run is asking: its answer is ours
                return self.alive()
        try:
            done = threading.Event()

            def ask():
                try:
                    self.transport.global_request("keepalive@openssh.com", wait=True)
                except Exception:  # noqa: BLE001 - a dead link
                    return
                done.set()

            threading.Thread(target=ask, name="fabops-agent-probe", daemon=True).start()
            return done.wait(timeout) and self.alive()
        finally:
            self.probing.release()

    def with_room(self) -> Optional[Link]:
        return next((link for link in self.links if link.alive() and link.open_now < link.room), None)

    def status(self) -> dict:
        return {"host": self.name, "alive": self.alive(), "since": self.since, "last_used": self.last_used,
                "channels": self.channels, "open": self.open_now(), "transports": len(self.links),
                "retired": self.retired}


class Transports:
    """The cache, by login key. `log` takes one line (never a secret)."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.entries: Dict[str, Entry] = {}  # the current entry of each login key
        self.retired: list = []  # entries closed when their last channel ends
        self.lock = threading.Lock()  # the dicts, and each entry's links
        self.host_locks: Dict[str, threading.Lock] = {}  # one attach per host at a time: runs share its answer

    @staticmethod
    def key_of(request: dict) -> str:
        what = [request["login"], request.get("known_hosts"), request.get("accept_new"), request.get("ssh_config"),
                _ssh_config_stamp(request.get("ssh_config"))]
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]

    def attach(self, request: dict) -> Entry:
        """The transports for this login: the cached ones while they are
        alive and trusted, else new ones (raises FabopsError). Another
        login's entries for the same host name are retired: a changed
        inventory or ~/.ssh/config closes the old transports."""
        key = self.key_of(request)
        name = request["login"][0]
        with self.lock:
            host_lock = self.host_locks.setdefault(name, threading.Lock())
        with host_lock:  # twelve runs starting at once make one connection, not twelve
            with self.lock:
                entry = self.entries.get(key)
                others = [e for k, e in self.entries.items() if e.name == name and k != key]
            for other in others:
                self.retire(other, "another login asks for this host (hosts.yml, known_hosts or ~/.ssh/config changed)")
            if entry is not None and not (entry.alive() and entry.trusted()):
                self.retire(entry, "it died, or known_hosts no longer holds its key")
                entry = None
            if entry is None:
                entry = Entry(key, request, self._connect(request))
                with self.lock:
                    self.entries[key] = entry
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
                       accept_new=request.get("accept_new", False), connect_timeout=request.get("timeout"),
                       ssh_config=request.get("ssh_config"))

    def open_channel(self, request: dict, timeout: Optional[float]):
        """A session channel to the host: on a transport with room, or on
        one more. A transport that does not open one within PROBE_SECONDS
        is dead (host rebooted, laptop slept, link cut): it is retired and
        the host connected once more, never waited on. A server that refuses
        a session (its MaxSessions) leaves the transport alive and full; one
        that refuses the first session of a transport refuses them all."""
        import paramiko

        entry = self.attach(request)
        reconnected = False
        for _ in range(MAX_TRIES):
            with self.lock:
                link = entry.with_room()
                if link is not None:
                    link.open_now += 1  # reserved while it opens
            if link is None:
                link = self._grow(entry, request)
            try:
                chan = link.transport.open_session(timeout=min(timeout or PROBE_SECONDS, PROBE_SECONDS))
            except paramiko.ChannelException as exc:  # the server said no
                with self.lock:
                    link.open_now -= 1
                    refused_first = link.open_now == 0
                    link.room = max(1, link.open_now)
                if refused_first:
                    raise UnreachableError(f"the host refused a session: {exc}", host=entry.name) from None
                continue
            except Exception as exc:  # noqa: BLE001 - every way a dead link shows
                with self.lock:
                    link.open_now -= 1
                if reconnected:
                    raise
                self.retire(entry, f"a channel would not open ({exc.__class__.__name__})")
                entry, reconnected = self.attach(request), True
                continue
            entry.channels += 1
            entry.last_used = time.time()
            return entry, link, chan
        raise UnreachableError(f"no channel after {MAX_TRIES} tries: the host refuses sessions", host=entry.name)

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
            done = entry.retired and entry.open_now() == 0
        entry.last_used = time.time()
        if done:
            self._close(entry)

    def retire(self, entry: Entry, why: str) -> None:
        """No new channel on `entry`; closed now if none is open, else when
        its last one ends."""
        with self.lock:
            if self.entries.get(entry.key) is entry:
                del self.entries[entry.key]
            if entry.retired:
                return
            entry.retired = True
            busy = entry.open_now() > 0
            if busy:
                self.retired.append(entry)
        self.log(f"closed the transport to {entry.name}: {why}" + (" (after its open channels)" if busy else ""))
        if not busy:
            self._close(entry)

    def forget(self, name: str) -> bool:
        with self.lock:
            mine = [e for e in self.entries.values() if e.name == name]
        for entry in mine:
            self.retire(entry, "forgotten (`fabops agent forget`)")
        return bool(mine)

    def expire(self, idle: float) -> None:
        """A host not used for `idle` seconds (no channel open) is closed:
        the agent holds hosts used recently, not every host ever used."""
        now = time.time()
        with self.lock:
            stale = [e for e in self.entries.values() if e.open_now() == 0 and now - e.last_used > idle]
        for entry in stale:
            self.retire(entry, f"not used for {idle:g} s")

    def busy(self) -> bool:
        with self.lock:
            return any(e.open_now() for e in list(self.entries.values()) + self.retired)

    def close_all(self) -> None:
        with self.lock:
            everything = list(self.entries.values()) + self.retired
            self.entries, self.retired = {}, []
        for entry in everything:
            self._close(entry)
        if everything:
            self.log("closed every transport: the agent is stopping")

    def _close(self, entry: Entry) -> None:
        from ..connection import close_quietly

        with self.lock:
            if entry in self.retired:
                self.retired.remove(entry)
        for link in entry.links:
            close_quietly(link.cxn)

    def find(self, name: str) -> Optional[Entry]:
        with self.lock:
            return next((e for e in self.entries.values() if e.name == name), None)

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
