"""A one-shot monitor's connection through OpenSSH's client, without
paramiko (docs/architecture.md, "The OpenSSH path"; docs/benchmarks.md).

A cold `monitor` (no agent: CI, FABOPS_AGENT=0, the first run) paid
paramiko's and fabric's imports and paramiko's handshake, 236 ms of CPU,
for one command. `ssh` does the same in a few ms of its own CPU. This
module runs that one command through `ssh`, with fabops' own host-key
policy written as ssh options, so what is trusted is what
connection.connect trusts:

- the known_hosts files are exactly connection.known_hosts_files' (the
  user's ~/.ssh/known_hosts of $HOME, the inventory's, the entry's
  UserKnownHostsFile), never /etc/ssh/ssh_known_hosts, which fabops does
  not read either (GlobalKnownHostsFile=/dev/null);
- StrictHostKeyChecking=yes, or accept-new exactly with --accept-new (a
  new key is then written to ~/.ssh/known_hosts, unhashed, 0600, as
  connection.record_host_key writes it); a changed key is refused by ssh
  either way;
- BatchMode=yes (never a prompt), ConnectTimeout as fabops' connect
  timeout, fabric's user always as -l, the inventory's port and identity
  file, and the SSH config fabops reads ($FABOPS_SSH_CONFIG as -F, or
  ssh's own files);
- what a config could add that paramiko never does is off (NEUTRAL):
  KnownHostsCommand, forwardings, tunnels, local and remote commands.

It is used only where it behaves as paramiko does (`plan`): an `ssh` on
PATH that knows NEUTRAL's options, $HOME the user's passwd home (ssh reads
~/.ssh there, paramiko in $HOME) or an SSH config named by
$FABOPS_SSH_CONFIG, no ProxyJump, ProxyCommand or HostKeyAlias (their
host-key checks and messages are connection.py's own), no SetEnv, a user
both would agree on, and known_hosts files both read alike
(`trusted_alike`). Otherwise None, and the caller connects with paramiko.

Failures: ssh's stderr is read for what happened (`failure`). A refused or
timed-out connection, a port that sent no banner (timed out, closed or
reset) and a name that does not resolve are said in
connection._open_one's words; a changed host key as its HostKeyError, both
fingerprints (the recorded one read from the line ssh names). An unknown
key, an authentication failure or anything else ssh says raises Redo: the
host answered, so the caller connects once more with paramiko, whose error
is then word for word connection.py's (ssh does not show an unknown key's
fingerprint).
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import threading
from typing import Dict, List, Optional, Tuple

from .errors import UnreachableError

OFF_ENV = "FABOPS_OPENSSH"  # 0: never (the paramiko path alone; the tests compare both)
# OpenSSH's default UserKnownHostsFile, which fabops does not read as named files
DEFAULT_KNOWN = "~/.ssh/known_hosts ~/.ssh/known_hosts2"


class Redo(Exception):
    """ssh failed in a way paramiko words exactly: connect with it instead."""


def _passwd_home() -> Optional[str]:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return None


def config_args() -> Optional[List[str]]:
    """ssh's -F for the SSH config fabops reads, [] for ssh's own files, or
    None when ssh would read another ~/.ssh than fabops ($HOME is not the
    passwd home: ssh reads the passwd one)."""
    from .connection import ssh_config_file

    path = ssh_config_file()
    if path:
        return ["-F", path]
    home = os.path.expanduser("~")
    if os.path.realpath(home) == os.path.realpath(_passwd_home() or "/nonexistent"):
        return []
    if os.path.exists(os.path.join(home, ".ssh", "config")):
        return None
    # fabric reads /etc/ssh/ssh_config then; ssh with -F reads that file alone
    return ["-F", "/etc/ssh/ssh_config" if os.path.isfile("/etc/ssh/ssh_config") else "/dev/null"]


# What an ssh config can make ssh do that paramiko never does, turned off
# (docs/architecture.md, "The OpenSSH path"): a host-key source beyond
# fabops' known_hosts, forwardings that would give a shell on the host a
# port back into the operator's network, a local command, and a remote
# command whose failure would read as the script's exit 255. On the command
# line they come before any config file, so they win (ssh takes an option's
# first value). `ssh -G` is given them too: an OpenSSH that does not know
# one (KnownHostsCommand is 8.5+) refuses the line, and paramiko connects.
NEUTRAL = {
    "KnownHostsCommand": "none",
    "ClearAllForwardings": "yes",
    "ForwardX11": "no",
    "ForwardAgent": "no",
    "PermitLocalCommand": "no",
    "Tunnel": "no",
    "RemoteCommand": "none",
}


def resolved(host, config: List[str]) -> Optional[dict]:
    """`ssh -G`'s reading of the host's entry: {option: [values]}, None when
    ssh cannot read it (then paramiko reads it, and says why)."""
    neutral = [w for k, v in NEUTRAL.items() for w in ("-o", f"{k}={v}")]
    argv = ["ssh", "-G", *config, *neutral, *_who(host), "--", host.address]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    options: dict = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), []).append(value)
    return options


def _who(host) -> List[str]:
    """The inventory's user and port, which win over the SSH config's (as in connection.connect)."""
    return (["-l", host.user] if host.user else []) + (["-p", str(host.port)] if host.port else [])


def _home_path(path: str) -> str:
    """A path as paramiko's side reads it: ~ is $HOME."""
    return os.path.expanduser(path) if path.startswith("~") else path


def plan(host, inventory, *, accept_new: bool, connect_timeout: Optional[float]) -> Optional["OpenSSH"]:
    """The OpenSSH connection for `host`, or None when only paramiko would
    behave as connection.connect does (the module's docstring says when)."""
    from . import connection

    if os.environ.get(OFF_ENV) == "0" or host.is_local or connection.THROUGH_AGENT is not None:
        return None
    if not shutil.which("ssh"):
        return None
    config = config_args()
    seen = resolved(host, config) if config is not None else None
    # SetEnv: values ssh would send that paramiko never does (no -o takes them back)
    if seen is None or any(_set(seen, k) for k in ("proxyjump", "proxycommand", "hostkeyalias", "setenv")):
        return None
    user = _user(host, seen)
    if user is None:
        return None
    seen = {**seen, "user": [user]}
    timeout = float(connect_timeout or connection.DEFAULT_CONNECT_TIMEOUT)
    extra = inventory.known_hosts if inventory else None
    known = _known_files(seen, extra)
    if not trusted_alike(known, connection.known_hosts_name(seen["hostname"][0], int(seen["port"][0]))):
        return None
    return OpenSSH(host, seen, config, known, accept_new, timeout)


def _user(host, seen: dict) -> Optional[str]:
    """The user fabric logs in as: the inventory's, else the SSH config's
    User, else getpass.getuser() ($USER first). ssh -G prints the passwd
    name when the config names none, so when that name and $USER differ
    and ssh -G says the passwd name, which one the config meant cannot be
    told apart: None, and paramiko connects."""
    import getpass

    if host.user:
        return host.user
    said = (seen.get("user") or [""])[0]
    try:
        import pwd

        passwd_name = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return None
    if said and said != passwd_name:
        return said  # the config's User: fabric takes it too
    return said if getpass.getuser() == passwd_name else None


def trusted_alike(files: List[str], name: str) -> bool:
    """Whether ssh and paramiko trust the same keys for `name` in `files`:
    False when any line is @cert-authority or @revoked (paramiko ignores
    them, ssh trusts a CA-signed host certificate or refuses a revoked key)
    or when `name` has more than one key of a type across the files (ssh
    accepts any of them, paramiko checks one)."""
    kinds: List[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue  # not there yet: nothing trusted from it by either
        for line in lines:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0].startswith("@"):
                return False
            if len(words) >= 3 and _matches(words[0], name):
                kinds.append(words[1])
    return len(kinds) == len(set(kinds))


def _matches(patterns: str, name: str) -> bool:
    """A known_hosts line's host field against `name`, as sshd(8) describes
    it: a hashed name (|1|salt|hash), or comma-separated patterns with * and
    ?, where a matching !pattern excludes the line."""
    import hmac

    if patterns.startswith("|1|"):
        try:
            salt, digest = (base64.b64decode(p) for p in patterns[3:].split("|", 1))
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)
    hit = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if _glob(pattern.lstrip("!")).fullmatch(name.lower()):
            if negated:
                return False
            hit = True
    return hit


def _glob(pattern: str) -> "re.Pattern":
    """ssh's wildcards, * and ? only: "[host]:port" is literal, not a class."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower()))


def _set(seen: dict, key: str) -> bool:
    values = seen.get(key) or []
    return any(v and v.lower() != "none" for v in values)


def _known_files(seen: dict, extra: Optional[str]) -> List[str]:
    """connection.known_hosts_files' list: ~/.ssh/known_hosts first (where
    accept-new records), then the inventory's, then the entry's own."""
    from .connection import user_known_hosts

    named = " ".join(seen.get("userknownhostsfile") or [])
    pw = _passwd_home() or "~"
    defaults = (DEFAULT_KNOWN, DEFAULT_KNOWN.replace("~", pw))  # ssh -G expands ~ with the passwd home
    named_list = [] if named in defaults else [_home_path(p) for p in named.split()]
    paths = [user_known_hosts()] + [p for p in [extra] + named_list if p and os.path.isfile(p)]
    return list(dict.fromkeys(paths))


def _identities(host, seen: dict) -> List[str]:
    """The keys paramiko offers: the inventory's identity file, then the
    config's IdentityFile (or ssh's defaults), all under $HOME."""
    files = [os.path.expanduser(host.identity_file)] if host.identity_file else []
    files += [_home_path(p) for p in seen.get("identityfile") or []]
    return [f for f in dict.fromkeys(files) if os.path.isfile(f)]


class OpenSSH:
    """The part of a fabric.Connection a one-shot sample uses: `run` of one
    command (target.Target.run's options), `close`. Each run is one `ssh`."""

    fabops_remote = True  # target.Target.is_local: this is a remote host

    def __init__(self, host, seen: dict, config: List[str], known: List[str], accept_new: bool, timeout: float):
        self.host_name, self.address = host.name, host.address
        self.user = seen["user"][0]
        self.hostname = seen["hostname"][0]
        self.port = int(seen["port"][0])
        self.config, self.known, self.accept_new, self.timeout = config, known, accept_new, timeout
        self.identities = _identities(host, seen)

    def argv(self, command: str) -> List[str]:
        """The whole ssh command line for `command` (docs/architecture.md, "The OpenSSH path")."""
        from .connection import KEEPALIVE_SECONDS

        options = {
            **NEUTRAL,
            "BatchMode": "yes",
            "StrictHostKeyChecking": "accept-new" if self.accept_new else "yes",
            "UserKnownHostsFile": " ".join(_quoted(p) for p in self.known),
            "GlobalKnownHostsFile": "/dev/null",
            "HashKnownHosts": "no",
            "UpdateHostKeys": "no",
            "CheckHostIP": "no",
            "VerifyHostKeyDNS": "no",
            "ConnectTimeout": str(int(max(1, round(self.timeout)))),
            "ServerAliveInterval": str(KEEPALIVE_SECONDS),
            "LogLevel": "ERROR",
            "ControlPath": "none",
            "IdentitiesOnly": "no",
            # paramiko's key exchange first: OpenSSH 9's default, sntrup761x25519,
            # cost ~130 ms more per connection on 2 busy cores (docs/benchmarks.md);
            # the rest of ssh's list stays behind it for hosts without curve25519
            "KexAlgorithms": "^curve25519-sha256,curve25519-sha256@libssh.org",
            "GSSAPIAuthentication": "no",  # paramiko's default: a host it cannot log in to, ssh does not either
        }
        argv = ["ssh", *self.config, "-T", "-l", self.user, "-p", str(self.port)]
        for key, value in options.items():
            argv += ["-o", f"{key}={value}"]
        for path in self.identities:
            argv += ["-i", path]
        return argv + ["--", self.address, command]

    def run(self, command, *, in_stream=False, timeout: Optional[float] = None, **_ignored):
        """Target.run's call: output captured, failures returned (warn).
        A connection that never ran the command raises (`failure`)."""
        from .connection import command_timeout

        text = getattr(in_stream, "text", None) if in_stream else None
        known = _prepare_known(self.known[0]) if self.accept_new else None
        try:
            return self._run(str(command), text, timeout or command_timeout())
        finally:
            if known is not None:
                _unmake(known)

    def _run(self, command: str, text: Optional[str], limit: float):
        from .host.localrun import CommandTimedOut, Result

        proc = subprocess.Popen(self.argv(command), stdin=subprocess.PIPE if text is not None else
                                subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, env=environment())
        try:
            out, err = proc.communicate(text.encode() if text is not None else None, timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise CommandTimedOut(Result(command, "", "", -1), limit) from None
        except BaseException:  # Ctrl-C: ssh is in its own session and would not get the SIGINT
            proc.kill()
            proc.wait()
            raise
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        if proc.returncode == 255:
            failure(stderr, self)  # raises when ssh itself failed
        return Result(command, stdout, stderr, proc.returncode)

    def close(self) -> None:
        """Nothing stays open between runs."""


# What ssh needs of this process' environment, and no more: an ssh config's
# SendEnv (Debian's sends LANG and LC_*) would hand the host's commands
# variables that paramiko never sends, and no -o can take it back (SendEnv
# adds up). SSH_AUTH_SOCK: paramiko asks the agent too.
KEPT_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SSH_AUTH_SOCK")


def environment() -> dict:
    return {k: os.environ[k] for k in KEPT_ENV if k in os.environ}


def _quoted(path: str) -> str:
    # ssh splits UserKnownHostsFile at spaces; a path with one is quoted
    return f'"{path}"' if " " in path else path


# The hosts of one monitor run at once (fanout's threads) share the one
# file accept-new writes: what _prepare_known made stays until the last of
# them has run, so one host's failed connection cannot remove the file (and
# ~/.ssh) while another's ssh is about to record its key there (ssh would
# then make them with the umask's modes, or fail to record it). path ->
# (runs using it, what was made for them).
_KNOWN_USERS: Dict[str, Tuple[int, List[str]]] = {}
_KNOWN_LOCK = threading.Lock()


def _prepare_known(path: str) -> str:
    """The file accept-new writes, as connection.record_host_key makes it:
    ~/.ssh 0700, the file 0600 (ssh would create it with the umask's mode).
    Returns the path, for _unmake once the run is over."""
    with _KNOWN_LOCK:
        users, made = _KNOWN_USERS.get(path, (0, []))
        if not users:
            made = []
            directory = os.path.dirname(path)
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700, exist_ok=True)
                made.append(directory)
            if not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
                made.insert(0, path)
        _KNOWN_USERS[path] = (users + 1, made)
    return path


def _unmake(path: str) -> None:
    """After the last run using it, remove what _prepare_known created that
    ssh left empty: paramiko creates ~/.ssh and known_hosts only when it
    records a key, so a failed connection, or a key already trusted from
    another file, leaves none."""
    with _KNOWN_LOCK:
        users, made = _KNOWN_USERS.pop(path)
        if users > 1:
            _KNOWN_USERS[path] = (users - 1, made)
            return
        for made_path in made:
            try:
                if os.path.isdir(made_path):
                    os.rmdir(made_path)  # only when empty
                elif os.path.getsize(made_path) == 0:
                    os.unlink(made_path)
            except OSError:
                pass  # not empty, or gone: it stays as it is


_CHANGED = re.compile(r"The fingerprint for the \S+ key sent by the remote host is\s+(SHA256:\S+?)\.?\s*$", re.M)
_OFFENDING = re.compile(r"Offending \S+ key in (.+):(\d+)\s*$", re.M)
_REFUSED = re.compile(r"connect to host \S+ port \d+: (.+?)\s*$", re.M)
# ssh's words for a server that took the TCP connection and sent no banner:
# a timeout, or the peer closing or resetting it (kex_exchange_identification)
_SILENT = re.compile(r"(Connection timed out during banner exchange|kex_exchange_identification: .+?"
                     r"|Connection closed by \S+ port \d+)\s*$", re.M)
_RESOLVE = re.compile(r"Could not resolve hostname \S+?: (.+?)\s*$", re.M)


def failure(stderr: str, cxn: OpenSSH) -> None:
    """ssh's exit 255 with `stderr`: raise what connection._open_one would
    for it, or Redo when only paramiko can say it in its words. Returns
    when ssh did connect (255 was then the command's own exit)."""
    if not any(w in stderr for w in ("ssh:", "Host key", "HOST IDENTIFICATION", "Permission denied", "banner",
                                     "kex_exchange_identification")):
        return
    where = f"{cxn.user}@{cxn.hostname}:{cxn.port}"
    changed = _CHANGED.search(stderr)
    if changed:
        raise changed_key_error(cxn, changed.group(1), _OFFENDING.search(stderr))
    silent = _SILENT.search(stderr)
    if silent:  # TCP accepted, no SSH server answered (timed out, closed, reset): _open_one's words
        raise UnreachableError(f"cannot connect to {where}: no SSH answer within {cxn.timeout:g} s "
                               f"({silent.group(1)})", host=cxn.host_name)
    if "Connection timed out" in stderr:
        raise UnreachableError(f"timed out connecting to {where} after {cxn.timeout:g} s", host=cxn.host_name)
    resolve = _RESOLVE.search(stderr)
    if resolve:
        raise UnreachableError(f"cannot resolve {cxn.hostname!r}: {resolve.group(1)}", host=cxn.host_name)
    refused = _REFUSED.search(stderr)
    if refused:
        raise UnreachableError(f"cannot connect to {where}: {refused.group(1)}", host=cxn.host_name)
    raise Redo(stderr.strip().splitlines()[-1] if stderr.strip() else "ssh exited 255")


def changed_key_error(cxn: OpenSSH, offered: str, offending) -> Exception:
    """connection._open_one's HostKeyError for a changed key; Redo when the
    recorded key cannot be read back from the line ssh named."""
    from .connection import host_key_changed, known_hosts_name

    recorded = _recorded_fingerprint(offending.group(1), int(offending.group(2))) if offending else None
    if recorded is None:
        return Redo("a changed host key whose recorded line cannot be read")
    name = known_hosts_name(cxn.hostname, cxn.port)
    return host_key_changed(name, name, recorded, offered, cxn.host_name)


def _recorded_fingerprint(path: str, number: int) -> Optional[str]:
    """The SHA256 fingerprint of line `number` of known_hosts file `path`."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
        words = lines[number - 1].split()
        if words and words[0].startswith("@"):
            words = words[1:]  # a @cert-authority / @revoked marker
        blob = base64.b64decode(words[2], validate=True)
    except (OSError, IndexError, ValueError):
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
