"""A run's side of the agent's relayed channels (relay.py has the other):
a fabric Connection whose client and transport are stand-ins, so Fabric's
runner, SFTP and fabops' own streams (Target.stream) work unchanged while
the SSH transport lives in the agent (docs/architecture.md, "The agent").

`install(socket_path)` is called once in a run: connection.connect then
returns an agent-backed connection for every SSH host."""
from __future__ import annotations

import socket
import threading
import time
from typing import Optional

from ..errors import FabopsError, UnreachableError
from . import wire

SOCKET: Optional[str] = None  # set in a run of the agent's; None everywhere else


def install(path: str) -> None:
    """From now on, connection.connect reaches SSH hosts through the agent
    at `path`."""
    global SOCKET
    from .. import connection

    SOCKET = path
    connection.THROUGH_AGENT = connect


REPLY_SECONDS = 60.0  # an agent that does not answer a request this long is stuck: the run says so


def _dial() -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(SOCKET)
    except OSError as exc:
        s.close()
        raise UnreachableError(f"the agent is gone ({exc.strerror}); run the command again") from None
    return s


def _reply(s: socket.socket) -> Optional[dict]:
    """The agent's answer to a request, within REPLY_SECONDS."""
    s.settimeout(REPLY_SECONDS)
    try:
        reply, _, _ = wire.recv(s)
    except (OSError, wire.WireError) as exc:
        raise UnreachableError(f"the agent did not answer ({exc.__class__.__name__}); run the command again "
                          "(`fabops agent stop` ends a stuck agent)") from None
    s.settimeout(None)
    return reply


def _raise(error: dict):
    """An error the agent sent: the same fabops class, text and host."""
    from .. import errors

    kind = getattr(errors, error.get("kind", ""), None)
    if not (isinstance(kind, type) and issubclass(kind, FabopsError)) or kind is errors.ConfigError:
        kind = errors.UnreachableError
    raise kind(error["text"], host=error.get("host"))


def connect(host, inventory, *, accept_new: bool = False, connect_timeout: Optional[float] = None):
    """connection.connect's SSH half, through the agent: a fabric Connection
    whose transport is the agent's (opened now, or kept from an earlier run)."""
    from ..connection import DEFAULT_CONNECT_TIMEOUT, connection_class, command_timeout, fabops_config, \
        run_overrides, timeout_runner
    from fabric import Config
    from fabric.runners import Remote

    from .relay import login_request

    from ..connection import quiet_paramiko
    from ..shell import tune_runner

    request = login_request(host, inventory, accept_new, connect_timeout)
    reply = _ask(request)
    if reply.get("direct"):
        return None  # the agent serves another HOME: this run connects itself
    quiet_paramiko()
    tune_runner()
    overrides = run_overrides(host, ssh=True)
    overrides["timeouts"] = {"command": command_timeout()}
    overrides["runners"] = {"remote": timeout_runner(Remote)}
    cxn = connection_class()(host.address, user=host.user, port=host.port, gateway=False,
                              config=fabops_config(Config, overrides),
                              connect_timeout=int(max(1, round(float(connect_timeout or DEFAULT_CONNECT_TIMEOUT)))))
    cxn.client = ProxyClient(request, reply)
    cxn.transport = cxn.client.get_transport()
    return cxn


def _ask(request: dict) -> dict:
    s = _dial()
    try:
        wire.send(s, request)
        reply = _reply(s)
    finally:
        s.close()
    if reply is None:
        raise UnreachableError("the agent ended while connecting")
    if "error" in reply:
        _raise(reply["error"])
    return reply


class ProxyClient:
    """What Fabric and fabops ask of paramiko's SSHClient."""

    def __init__(self, request: dict, reply: dict):
        self._transport = ProxyTransport(request, reply)

    def get_transport(self):
        return self._transport

    def connect(self, *_args, **_kwargs) -> None:
        """Fabric opens a connection that is not connected: attach again
        (the agent reconnects the host if its link died)."""
        _ask(self._transport.request)
        self._transport.active = True

    def open_sftp(self):
        import paramiko

        chan = self._transport.open_session()
        chan.invoke_subsystem("sftp")
        return paramiko.SFTPClient(chan)

    def close(self) -> None:
        self._transport.close()


class ProxyTransport:
    """paramiko's Transport, as far as fabops uses it: open_session,
    is_active, close (which ends this run's channels, never the agent's
    transport: fabops closes a transport to end reads stuck on a dead
    link) and the keepalive `logs -f` probes with."""

    def __init__(self, request: dict, reply: dict):
        self.request = request
        self.active = True
        self.channels = []
        self.peer = tuple(reply.get("peer") or ("", 0))

    def is_active(self) -> bool:
        return self.active

    def getpeername(self):
        return self.peer

    def set_keepalive(self, _interval: int) -> None:
        """The agent's transport has its own."""

    def open_session(self, timeout: Optional[float] = None, **_kwargs) -> "ProxyChannel":
        if not self.active:
            import paramiko

            raise paramiko.SSHException("the transport is closed")
        s = _dial()
        wire.send(s, dict(self.request, op="channel", timeout=timeout))
        reply = _reply(s)
        if reply is None or "error" in reply:
            s.close()
            _raise((reply or {}).get("error") or {"text": "the agent ended while opening a channel"})
        chan = ProxyChannel(s, self)
        self.channels.append(chan)
        return chan

    def global_request(self, kind, data=None, wait=True):
        """A keepalive answered by the agent's transport (or None: no answer)."""
        try:
            reply = _ask(dict(self.request, op="probe", kind=kind))
        except FabopsError:
            reply = {}
        if not reply.get("answered"):
            self.active = False  # as paramiko's transport is once its link is gone
            return None
        return True

    def close(self) -> None:
        self.active = False
        for chan in self.channels:
            chan.close()


class ProxyChannel:
    """paramiko's Channel, as Fabric's runner, SFTP and fabops' streams use
    it: requests answered by the agent; stdout and stderr buffered here from
    the agent's frames."""

    def __init__(self, sock: socket.socket, owner: Optional["ProxyTransport"] = None):
        self.sock = sock
        self.owner = owner
        self.cond = threading.Condition()
        self.out, self.err = bytearray(), bytearray()
        self.out_eof = self.err_eof = False
        self.exit_status = -1
        self.status_ready = False
        # set with status_ready, as paramiko's: the runner waits on it (connection._waited_for_exit)
        self.status_event = threading.Event()
        self.replies = []
        self.closed = False
        self.combine = False
        self.timeout: Optional[float] = None
        self.sending = threading.Lock()
        threading.Thread(target=self._read, name="fabops-agent-channel", daemon=True).start()

    # ---------------------------------------------------------------- frames
    def _send(self, header: dict, payload: bytes = b"") -> None:
        with self.sending:
            wire.send(self.sock, header, payload)

    def _read(self) -> None:
        try:
            while True:
                header, payload, _ = wire.recv(self.sock)
                if header is None:
                    break
                self._take(header, payload)
        except (OSError, wire.WireError):
            pass
        with self.cond:
            if not self.status_ready and not self.closed and self.owner is not None:
                self.owner.active = False  # the agent went away under the channel: a lost link
            self.out_eof = self.err_eof = self.status_ready = True
            self.status_event.set()
            self.replies.append({"c": "fail", "text": "the agent closed the channel"})
            self.cond.notify_all()

    def _take(self, h: dict, payload: bytes) -> None:
        kind = h.get("c")
        with self.cond:
            if kind == "out" or (kind == "err" and self.combine):
                self.out += payload
            elif kind == "err":
                self.err += payload
            elif kind == "out_eof":
                self.out_eof = True
            elif kind == "err_eof":
                self.err_eof = True
            elif kind == "exit":
                self.exit_status, self.status_ready = h["status"], True
                self.status_event.set()
                if h.get("lost") and self.owner is not None:
                    self.owner.active = False
            else:  # ok / fail: the answer to a request
                self.replies.append(h)
            self.cond.notify_all()

    def _request(self, header: dict) -> None:
        import paramiko

        self._send(header)
        with self.cond:
            self.cond.wait_for(lambda: self.replies)
            reply = self.replies.pop(0)
        if reply.get("c") != "ok":
            raise paramiko.SSHException(reply.get("text") or "channel request failed")

    # ---------------------------------------------------------------- requests
    def exec_command(self, command) -> None:
        self._request({"c": "exec", "cmd": command if isinstance(command, str) else command.decode()})

    def get_pty(self, term="vt100", width=80, height=24, width_pixels=0, height_pixels=0) -> None:
        self._request({"c": "pty", "term": term, "width": width, "height": height})

    def update_environment(self, environment) -> None:
        self._request({"c": "env", "env": dict(environment)})

    def invoke_subsystem(self, subsystem) -> None:
        self._request({"c": "subsystem", "name": subsystem})

    def resize_pty(self, width=80, height=24, width_pixels=0, height_pixels=0) -> None:
        self._send({"c": "resize", "width": width, "height": height})

    def set_combine_stderr(self, combine: bool) -> bool:
        old, self.combine = self.combine, bool(combine)
        return old

    # ---------------------------------------------------------------- output
    def _recv_from(self, buf: bytearray, eof: str, n: int) -> bytes:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self.cond:
            while not buf and not getattr(self, eof):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise socket.timeout("no output")
                self.cond.wait(left)
            data = bytes(buf[:n])
            del buf[:n]
            return data

    def recv(self, nbytes: int) -> bytes:
        return self._recv_from(self.out, "out_eof", nbytes)

    def recv_stderr(self, nbytes: int) -> bytes:
        return self._recv_from(self.err, "err_eof", nbytes)

    def recv_ready(self) -> bool:
        with self.cond:
            return bool(self.out)

    def recv_stderr_ready(self) -> bool:
        with self.cond:
            return bool(self.err)

    def exit_status_ready(self) -> bool:
        with self.cond:
            return self.status_ready

    def recv_exit_status(self) -> int:
        with self.cond:
            self.cond.wait_for(lambda: self.status_ready)
            return self.exit_status

    # ---------------------------------------------------------------- input
    def send(self, data) -> int:
        data = data.encode() if isinstance(data, str) else bytes(data)
        if self.closed:
            raise OSError("Socket is closed")
        self._send({"c": "data"}, data)
        return len(data)

    def sendall(self, data) -> None:
        self.send(data)

    def send_ready(self) -> bool:
        return not self.closed

    def shutdown_write(self) -> None:
        if not self.closed:
            self._send({"c": "eof"})

    def shutdown(self, how: int) -> None:
        if how in (1, 2):
            self.shutdown_write()

    # ---------------------------------------------------------------- the rest
    def settimeout(self, timeout: Optional[float]) -> None:
        self.timeout = timeout

    def gettimeout(self) -> Optional[float]:
        return self.timeout

    def setblocking(self, blocking) -> None:
        self.timeout = None if blocking else 0.0

    @property
    def active(self) -> bool:
        return not self.closed

    def get_name(self) -> str:
        """What paramiko's SFTP client logs a channel as."""
        return "agent-channel"

    def fileno(self):
        raise OSError("a relayed channel has no file descriptor to select on")

    def close(self) -> None:
        """Close the channel: the agent closes its real one, which ends a
        pty's processes on the host as closing paramiko's own would."""
        if self.closed:
            return
        self.closed = True
        try:
            self._send({"c": "close"})
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.cond:
            self.out_eof = self.err_eof = True
            self.cond.notify_all()
