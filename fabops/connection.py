"""The one connection factory: a checked `fabric.Connection` or a local Context.

Security defaults (docs/architecture.md, "Security defaults"):
- host keys are checked against ~/.ssh/known_hosts plus the inventory's
  optional known_hosts file, with a reject policy. Fabric's auto-add policy is
  never used; `accept_new=True` is an explicit trust-on-first-use that records
  the key, as OpenSSH's `StrictHostKeyChecking=accept-new` does;
- a changed key is refused with both fingerprints;
- ~/.ssh/config is honoured, so `find-to-do` keeps working as an alias;
  $FABOPS_SSH_CONFIG names another file in its place, as `ssh -F FILE`
  does (CI writes one under $RUNNER_TEMP: docs/ci.md), and the known_hosts
  files a host's entry names in UserKnownHostsFile are read too;
- every ProxyJump hop is checked with that same policy (Fabric opens jump
  hosts with auto-add and no known_hosts), hops in OpenSSH's order.

Paramiko and fabric are imported inside functions: the host-side cron path
imports this package but must never pay for them (docs/architecture.md, "Layers").
"""
from __future__ import annotations

import base64
import functools
import hashlib
import os
import socket
import sys
from typing import Optional, Tuple

from .errors import HostKeyError, UnreachableError, UsageError
from .inventory import Host, Inventory
from .shell import q, tune_runner

DEFAULT_CONNECT_TIMEOUT = 10.0
# In a run of the agent's, the connector that borrows the agent's warm
# transport (fabops/agent/proxy.py sets it); None everywhere else.
THROUGH_AGENT = None
KEEPALIVE_SECONDS = 15


def quiet_paramiko() -> None:
    """paramiko logs transport-thread failures with full tracebacks through
    logging's last-resort handler; we report them as one line instead. With
    --debug (root logger configured) they still propagate."""
    import logging

    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def fingerprint(key) -> str:
    """OpenSSH-style SHA256 fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def user_known_hosts() -> str:
    return os.path.expanduser("~/.ssh/known_hosts")


def known_hosts_files(cxn, extra: Optional[str]) -> list:
    """The known_hosts files trusted for `cxn`: ~/.ssh/known_hosts, the
    inventory's file and those its SSH config entry names in
    UserKnownHostsFile (read as well, never instead: a key recorded by
    --accept-new goes to ~/.ssh/known_hosts), the ones that exist."""
    named = (cxn.ssh_config.get("userknownhostsfile") or "").split()
    paths = [user_known_hosts(), extra] + [os.path.expanduser(p) for p in named]
    return [p for p in paths if p and os.path.isfile(p)]


SSH_CONFIG_ENV = "FABOPS_SSH_CONFIG"
FROM_ENV = object()  # fabops_config's ssh_config: $FABOPS_SSH_CONFIG, read now


def ssh_config_file() -> Optional[str]:
    """$FABOPS_SSH_CONFIG as an absolute path, or None (ssh's own files:
    ~/.ssh/config, /etc/ssh/ssh_config). A name that is no file is exit 64."""
    path = os.environ.get(SSH_CONFIG_ENV)
    if not path:
        return None
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise UsageError(f"{SSH_CONFIG_ENV}={path}: no such file (unset it to read ~/.ssh/config)")
    return path


def record_host_key(path: str, name: str, key) -> None:
    """Append one known_hosts line, creating ~/.ssh (0700) and the file (0600)."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(f"{name} {key.get_name()} {key.get_base64()}\n")


def require_linux(host: Host) -> None:
    """The local sandbox and the process back end rely on /proc, setsid and flock."""
    if not sys.platform.startswith("linux"):
        raise UsageError(
            f"connection: local needs Linux (/proc, setsid, flock); this is {sys.platform}",
            host=host.name,
        )


def run_overrides(host: Host, ssh: bool = False) -> dict:
    """Config shared by both kinds of context: no stdin mirroring (fabops
    runs from cron and CI, where there is no stdin, and a remote command
    must never wait on the laptop's) and, on this machine, the inventory's
    `env` for every command.

    Over SSH the env is not Fabric's: Fabric sends it as `export K=V &&
    command` in the command line, which `ps` shows every user of the host.
    Each command sources fabops' env.sh instead (target.Target.prepare)."""
    run: dict = {"in_stream": False}
    if host.env and not ssh:
        run["env"] = dict(host.env)
    return {"run": run}


DEFAULT_COMMAND_TIMEOUT = 300.0


def command_timeout() -> float:
    """Every remote command has a timeout, so a hung host is exit 3, never a
    hang. Long steps (installs) pass their own; FABOPS_COMMAND_TIMEOUT overrides."""
    try:
        return float(os.environ.get("FABOPS_COMMAND_TIMEOUT") or DEFAULT_COMMAND_TIMEOUT)
    except ValueError:
        return DEFAULT_COMMAND_TIMEOUT


def _waited_for_exit(runner) -> bool:
    """A remote runner's wait: Invoke polls for the exit status every
    input_sleep (2 ms, shell.tune_runner), and 20 commands at once (ping
    through the agent) made 10,000 wake-ups a second fight for the GIL on
    two cores. The channel's status_event (paramiko's, and the agent's
    relayed channel's) wakes it when the status comes; the 50 ms timeout
    still notices an IO thread that died. False: no such event (Invoke's
    own wait then)."""
    event = getattr(runner.channel, "status_event", None)
    if event is None:
        return False
    while not (runner.process_is_finished or runner.has_dead_threads):
        event.wait(0.05)
    return True


def timeout_runner(base):
    """`base` (an Invoke or Fabric runner class) with a timeout that is always
    reported as one.

    Invoke decides "timed out" after the command ends by asking whether its
    timer thread is still alive. The timer's thread calls kill() and then has
    to finish; on a busy machine the main thread often gets there first, so a
    killed command came back as an ordinary failed one with half its output
    (a hung monitor fact script became exit 2 with a partial panel, instead of
    exit 3). A flag set before the kill has no such window.

    Ctrl-C while a local command runs: Invoke's Runner only forwards it (a
    ^C written to the command's stdin, for a REPL that keeps running) and
    waits on; the command, in our process group, got the SIGINT and died,
    and the task carried on as if it had failed. The Local runner kills the
    command and lets the KeyboardInterrupt go on (`fabops: interrupted`,
    exit 130, as on cron's fast path: host/localrun.py). Fabric's Remote
    keeps its own: a pty's ^C over SSH, else the interrupt raised."""
    from invoke.runners import Local

    class TimeoutRunner(base):
        _expired = False

        def kill(self):
            self._expired = True
            try:
                super().kill()
            except (EOFError, OSError):
                # the timer thread fires after the link is gone: nothing
                # left to kill, and the run already reports the dropped link
                pass

        @property
        def timed_out(self) -> bool:
            return self._expired or super().timed_out

        if not issubclass(base, Local):
            def wait(self):
                if not _waited_for_exit(self):
                    super().wait()

        if issubclass(base, Local):
            def send_interrupt(self, interrupt):
                try:
                    base.kill(self)  # not self.kill(): an interrupt is no timeout
                finally:
                    raise interrupt

    TimeoutRunner.__name__ = TimeoutRunner.__qualname__ = "Timeout" + base.__name__
    return TimeoutRunner


def local_context(host: Host):
    """An invoke.Context for `connection: local` hosts."""
    from invoke import Config, Context
    from invoke.runners import Local

    require_linux(host)
    overrides = run_overrides(host)
    overrides["runners"] = {"local": timeout_runner(Local)}
    return Context(config=fabops_config(Config, overrides))


def fabops_config(kind, overrides: dict, ssh_config=FROM_ENV):
    """Invoke's (or Fabric's) Config with fabops' overrides and nothing
    else: lazy, so no /etc/invoke.yaml, ~/.invoke.yaml, ~/.fabric.yaml or
    INVOKE_* variable changes what fabops' own commands do (a `run: {dry:
    true}` there made status read nothing and deploy abort). fabops' settings
    are hosts.yml's. Fabric's ssh_config is still read: it is the SSH
    client's, not Invoke's: `ssh_config` (a path, or None for ssh's own
    files), by default $FABOPS_SSH_CONFIG's."""
    if hasattr(kind, "load_ssh_config"):
        path = ssh_config_file() if ssh_config is FROM_ENV else ssh_config
        if path:
            overrides = dict(overrides, ssh_config_path=path)
    config = kind(overrides=overrides, lazy=True)
    if hasattr(config, "load_ssh_config"):
        config.load_ssh_config()
    return config


def connect(
    host: Host,
    inventory: Optional[Inventory] = None,
    *,
    accept_new: bool = False,
    connect_timeout: Optional[float] = None,
    ssh_config=FROM_ENV,
):
    """Return an open connection to `host`: a fabric.Connection, or an
    invoke.Context for local hosts. Raises UnreachableError / HostKeyError.
    `ssh_config`: fabops_config's (the agent passes its run's)."""
    if host.is_local:
        return local_context(host)
    if THROUGH_AGENT is not None:  # a run of the agent's: its transport (docs/architecture.md, "The agent")
        cxn = THROUGH_AGENT(host, inventory, accept_new=accept_new, connect_timeout=connect_timeout)
        if cxn is not None:  # None: the agent serves another HOME, and this run connects itself
            return cxn
    from fabric import Config
    from fabric.runners import Remote

    quiet_paramiko()
    tune_runner()
    timeout = float(connect_timeout or DEFAULT_CONNECT_TIMEOUT)
    overrides = run_overrides(host, ssh=True)
    overrides["timeouts"] = {"command": command_timeout()}
    overrides["runners"] = {"remote": timeout_runner(Remote)}
    keys = _HostKeys(host.name, inventory.known_hosts if inventory else None, accept_new)
    opener = _Opener(fabops_config(Config, overrides, ssh_config), timeout, keys)
    cxn = opener.connection(host.address, user=host.user, port=host.port,
                            key_filename=os.path.expanduser(host.identity_file) if host.identity_file else None)
    cxn.gateway = opener.gateway(cxn)
    keys.apply(cxn)
    open_connection(cxn, host, timeout)
    return cxn


# A ProxyJump chain longer than this is a loop in ~/.ssh/config.
MAX_JUMPS = 8


class _HostKeys:
    """The one host-key policy, applied to the final host and to every jump
    host alike: ~/.ssh/known_hosts plus the inventory's file, unknown keys
    refused (or recorded with --accept-new), changed keys refused."""

    def __init__(self, host_name: str, extra: Optional[str], accept_new: bool):
        self.host_name = host_name
        self.extra = extra
        self.accept_new = accept_new

    def apply(self, cxn, hop: str = "") -> None:
        # Fabric installs an auto-add policy and loads no known_hosts at all; replace both.
        client = cxn.client
        for path in known_hosts_files(cxn, self.extra):
            client.load_system_host_keys(path)
        if self.accept_new:
            client.set_missing_host_key_policy(_AcceptNewPolicy(user_known_hosts()))
        else:
            client.set_missing_host_key_policy(_RejectWithMessage(self.host_name, hop))
        cxn.fabops_hop = hop


class _Opener:
    """Builds the final Connection and its ProxyJump hops with the same
    config, timeouts and host-key policy. Fabric's own gateway logic is never
    used for a jump host: it opens them with auto-add and no known_hosts,
    and it visits `ProxyJump a,b` in reverse (b first), where OpenSSH goes
    a, then b, then the host."""

    def __init__(self, config, timeout: float, keys: _HostKeys):
        self.config = config
        self.timeout = timeout
        self.keys = keys

    def connection(self, address: str, key_filename: Optional[str] = None, **kwargs):
        # connect_kwargs is a fresh dict per connection: Fabric adds the
        # ssh_config IdentityFile to the one it is given.
        connect_kwargs = {"banner_timeout": self.timeout, "auth_timeout": self.timeout}
        if key_filename:
            connect_kwargs["key_filename"] = [key_filename]
        return connection_class()(
            address, config=self.config, gateway=False, connect_kwargs=connect_kwargs,
            connect_timeout=int(max(1, round(self.timeout))), **kwargs)

    def gateway(self, cxn):
        """What `cxn` goes through, per its ~/.ssh/config entry: the last of
        a chain of checked hop Connections, a ProxyCommand string (paramiko
        only pipes through it; the host's key is still checked here), or None."""
        hops = self._hops(cxn, 0)
        if hops is None:
            proxy = cxn.ssh_config.get("proxycommand")
            return proxy or None
        for i, hop in enumerate(hops):
            if i:
                hop.gateway = hops[i - 1]
            self.keys.apply(hop, f"jump host {hop.original_host}, ProxyJump hop {i + 1} of {len(hops)}")
        return hops[-1] if hops else None

    def _hops(self, cxn, depth: int):
        """`cxn`'s ProxyJump as OpenSSH reads it: the first hop's own jumps
        (recursively), then each hop in order. None when there is none; []
        when a hop is the host itself (same address and port: a `Host *`
        entry read for the jump host), as Fabric does."""
        spec = (cxn.ssh_config.get("proxyjump") or "").strip()
        if not spec or spec.lower() == "none":
            return None
        if depth >= MAX_JUMPS:
            raise UsageError(f"ProxyJump for {cxn.original_host} is more than {MAX_JUMPS} hops deep: "
                             "a loop in ~/.ssh/config?")
        words = [w.strip() for w in spec.split(",") if w.strip()]
        hops = []
        for word in words:
            user, host, port = parse_jump(word, cxn.original_host)
            hops.append(self.connection(host, **({"user": user} if user else {}), **({"port": port} if port else {})))
        if any((h.host, h.port) == (cxn.host, cxn.port) for h in hops):
            return []
        first = self._hops(hops[0], depth + 1)
        if first is None:
            hops[0].gateway = hops[0].ssh_config.get("proxycommand") or None
            first = []
        elif first:
            hops[0].gateway = first[-1]
        return first + hops


def parse_jump(word: str, owner: str = "") -> Tuple[Optional[str], str, Optional[int]]:
    """One ProxyJump hop as ssh(1) reads it: `[user@]host[:port]` or
    `ssh://[user@]host[:port]`, an IPv6 address in brackets (`[::1]:2222`).
    Fabric's own host-string split would read `ssh://u@h` as the user
    `ssh://u` and `[::1]:22` as a host name, so the hop went elsewhere."""
    bad = f"ProxyJump hop {word!r} (for {owner or 'this host'}) is not [user@]host[:port] or ssh://[user@]host[:port]"
    rest = word[6:].rstrip("/") if word.lower().startswith("ssh://") else word
    user, _, hostport = rest.rpartition("@")
    if hostport.startswith("["):
        host, closed, after = hostport[1:].partition("]")
        if not closed or (after and not after.startswith(":")):
            raise UsageError(bad)
        port = after[1:] if after else ""
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:
        host, port = hostport, ""  # a bare IPv6 address has no port
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)) or (_ and not user):
        raise UsageError(bad)
    return user or None, host, int(port) if port else None


@functools.lru_cache(maxsize=None)
def connection_class():
    """fabric.Connection whose close() also closes its ProxyJump hops
    (Fabric's leaves a gateway's transport open). Built once, on first use."""
    from fabric import Connection

    class CheckedConnection(Connection):
        fabops_hop = ""  # "jump host NAME, ProxyJump hop i of n"; "" for the host itself

        def close(self):
            super().close()
            if isinstance(self.gateway, Connection):
                self.gateway.close()

    return CheckedConnection


def hop_chain(cxn) -> list:
    """The jump hosts of `cxn`, the first (directly reached) first."""
    chain = []
    gw = cxn.gateway
    while gw is not None and not isinstance(gw, (str, bool)):
        chain.insert(0, gw)
        gw = gw.gateway
    return chain


def known_hosts_name(hostname: str, port: int) -> str:
    """The name a host's key is recorded under in known_hosts."""
    return hostname if int(port) == 22 else f"[{hostname}]:{port}"


def _naming(what: str, hop: str) -> str:
    """`what` (an address) and, for a jump host, which hop it is."""
    return f"{what} ({hop})" if hop else what


def open_connection(cxn, host: Host, timeout: float) -> None:
    """Open `cxn` now (Fabric would lazily open on first use), its jump hosts
    first, one by one, so that a failure names the hop it happened on; turn
    every failure into one clear UnreachableError or HostKeyError line."""
    for hop in hop_chain(cxn) + [cxn]:
        _open_one(hop, host, timeout)
    tune_transport(cxn)


def _open_one(cxn, host: Host, timeout: float) -> None:
    import paramiko

    through = cxn.gateway if cxn.gateway and not isinstance(cxn.gateway, str) else None
    where = _naming(f"{cxn.user}@{cxn.host}:{cxn.port}",
                    cxn.fabops_hop or (f"through {through.fabops_hop}" if through else ""))
    try:
        if not cxn.gateway and "sock" not in cxn.connect_kwargs:
            # Our own socket, so TCP_NODELAY is on before the handshake:
            # the key exchange and auth then take ~15 ms instead of ~60 ms on
            # loopback (Nagle meeting delayed ACKs). Through a jump host or a
            # ProxyCommand, Fabric opens the gateway as usual.
            sock = socket.create_connection((cxn.host, cxn.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cxn.connect_kwargs["sock"] = sock
        cxn.open()
    except HostKeyError:
        raise
    except paramiko.BadHostKeyException as exc:
        name = known_hosts_name(exc.hostname, cxn.port)
        raise host_key_changed(_naming(name, cxn.fabops_hop), name, fingerprint(exc.expected_key),
                               fingerprint(exc.key), host.name) from None
    except paramiko.AuthenticationException as exc:
        raise UnreachableError(f"authentication failed for {where}: {exc}", host=host.name) from None
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        reasons = "; ".join(sorted({e.strerror or str(e) for e in exc.errors.values()}))
        raise UnreachableError(f"cannot connect to {where}: {reasons}", host=host.name) from None
    except (socket.timeout, TimeoutError):
        raise UnreachableError(f"timed out connecting to {where} after {timeout:g} s", host=host.name) from None
    except socket.gaierror as exc:
        raise UnreachableError(f"cannot resolve {cxn.host!r}: {exc.strerror}", host=host.name) from None
    except paramiko.SSHException as exc:
        # The transport thread keeps the real cause (e.g. a banner timeout)
        # and the caller only sees a vague "No existing session".
        transport = cxn.client.get_transport()
        cause = getattr(transport, "saved_exception", None) if transport else None
        text = str(cause or exc) or exc.__class__.__name__
        # "No existing session" is paramiko's word for a handshake that never
        # finished: the port accepted TCP but no SSH server answered in time.
        if any(w in text.lower() for w in ("banner", "timeout", "no existing session")):
            text = f"no SSH answer within {timeout:g} s ({text})"
        raise UnreachableError(f"cannot connect to {where}: {text}", host=host.name) from None
    except OSError as exc:
        raise UnreachableError(f"cannot connect to {where}: {exc.strerror or exc}", host=host.name) from None


def host_key_changed(naming: str, name: str, recorded: str, offered: str, host_name: str) -> HostKeyError:
    """The refusal of a changed host key, with both fingerprints: paramiko's
    BadHostKeyException here, ssh's stderr in openssh.py. `naming`: the
    address (and hop) as said; `name`: the known_hosts name to remove."""
    return HostKeyError(
        f"HOST KEY CHANGED for {naming}: known_hosts has {recorded}, "
        f"the server offered {offered}. Refusing to connect: this may be an attack. "
        f"If the host was really rebuilt, remove the old key with `ssh-keygen -R {q(name)}` "
        "and connect once with --accept-new.",
        host=host_name,
    )


def tune_transport(cxn) -> None:
    """TCP_NODELAY where there is a real TCP socket (not a ProxyCommand pipe):
    Nagle's algorithm meeting delayed ACKs costs ~40 ms per command. Also a
    keepalive, so idle NAT mappings survive a long `monitor --watch`."""
    transport = cxn.client.get_transport()
    if transport is None:
        return
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    transport.set_keepalive(KEEPALIVE_SECONDS)


class _RejectWithMessage:
    """paramiko MissingHostKeyPolicy: refuse unknown keys with a useful message."""

    def __init__(self, host_name: str, hop: str = ""):
        self.host_name = host_name
        self.hop = hop

    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            f"unknown host key for {_naming(hostname, self.hop)} ({key.get_name()} {fingerprint(key)}); not in "
            f"{user_known_hosts()}. Verify the fingerprint, then run again with --accept-new "
            "to record it (trust on first use).",
            host=self.host_name,
        )


class _AcceptNewPolicy:
    """Trust on first use: record a never-seen key, then continue. A key that
    differs from a recorded one never reaches this policy: paramiko raises
    BadHostKeyException for it, and we refuse."""

    def __init__(self, path: str):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        # paramiko passes the `[host]:port` form already for non-22 ports.
        record_host_key(self.path, hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)


def close_quietly(cxn, timeout: float = 2.0) -> None:
    """Close a connection without ever hanging: paramiko's Transport.close()
    joins its thread with no timeout, which blocks on a frozen peer."""
    close = getattr(cxn, "close", None)
    if close is None:
        return
    import threading

    t = threading.Thread(target=lambda: _ignore_errors(close), name="fabops-close", daemon=True)
    t.start()
    t.join(timeout)


def _ignore_errors(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - closing a dead connection
        pass
