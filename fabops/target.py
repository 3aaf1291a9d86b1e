"""Where a command runs: one `Target` for an SSH host (a fabric.Connection)
and for this machine (an invoke.Context: the `local` sandbox host, and the
host's own cron path). Everything that runs a command, moves a file or
names a path in fabops' home goes through it (docs/architecture.md, "The
Target").

Fabric's Connection is an invoke Context, so `run` is the same call on
both; the Target adds what fabops wants of every command (hidden output,
no stdin unless given, one error format, a refusal of plain strings) and owns the few
real differences: files (SFTP or a copy), streams (an SSH channel or a
child process) and whether paths are this machine's. Modelled on pyinfra's
connector base class, in our own code. The host side uses it too, so it
imports only the standard library and its host-safe siblings.
"""
from __future__ import annotations

import os
import posixpath
import signal
import sys
import time
from typing import Any, Dict, Iterable, Optional, Union

from .errors import CommandFailed
from .paths import HostPaths
from .shell import as_cmd, join, sudo as sudo_cmd, sudo_failure, with_env


# `--debug` shows each command a Target runs, with its exit and duration
# (fabops/tasks/_base.py, debug_enabled, gives this logger, `COMMANDS`, a
# handler). A logger, not a print: the library never prints, and with no
# handler the check below costs one level test per command. Where nothing
# has imported logging, nothing can have given it a handler: the cron fast
# path (host/fastpath.py) does not import logging for it.
COMMANDS_LOGGER = "fabops.commands"


def _commands():
    logging = sys.modules.get("logging")
    return logging.getLogger(COMMANDS_LOGGER) if logging is not None else None


def __getattr__(name: str):
    if name == "COMMANDS":  # target.COMMANDS, the logger (importing logging)
        import logging

        return logging.getLogger(COMMANDS_LOGGER)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Target:
    """One place commands run. `c` is a fabric.Connection or an
    invoke.Context; `name` labels errors; `home` is fabops' directory there
    (as hosts.yml spells it: a leading ~/ is the login home)."""

    def __init__(self, c, name: str = "local", home: str = "~/.fabops", env_file: Optional[str] = None):
        self.c = c.c if isinstance(c, Target) else c
        self.name = name
        self.home = home
        # Over SSH, the inventory's env is sourced from this file (written by
        # setup and by every host-side run) instead of riding in each
        # command's argv, where `ps` shows it (docs/security.md)
        self.env_file = env_file

    @classmethod
    def of(cls, c, host=None) -> "Target":
        """`c` as a Target for `host` (a Target is returned as it is). A
        bare connection needs its host: its errors name the host, and its
        env file is the host's (without one they read "local")."""
        if isinstance(c, Target):
            return c
        if host is None:
            t = cls(c)
            if not t.is_local:
                raise TypeError("Target.of(connection) needs the host: Target.of(c, host)")
            return t
        t = cls(c, name=host.name, home=host.home)
        if not t.is_local:
            t.env_file = host.paths.env_sh
        return t

    def __repr__(self) -> str:
        return f"Target({self.name!r}, {'local' if self.is_local else 'ssh'})"

    # ------------------------------------------------------------ what it is
    @property
    def is_local(self) -> bool:
        """True for this machine (an invoke.Context), False over SSH (a
        fabric.Connection, itself a Context). Never imports fabric: the
        host's cron path loads no paramiko, and where fabric is not loaded
        nothing can be a Connection. The context's own class is asked, not
        sys.modules: while another host's thread imports fabric, the module
        is there without its Connection yet (an AttributeError, exit 70, on
        the `local` host of `monitor -H local,find-to-do`)."""
        if getattr(self.c, "fabops_remote", False):  # openssh.OpenSSH: a host over `ssh`
            return False
        return not any(k.__name__ == "Connection" and k.__module__ == "fabric.connection"
                       for k in type(self.c).__mro__)

    @property
    def paths(self) -> HostPaths:
        """fabops' own files there: expanded on this machine, ~/-relative over
        SSH (the host's shell expands them; quote with shell.path)."""
        return HostPaths.for_home(self.home) if self.is_local else HostPaths.as_spelled(self.home)

    def local_path(self, path: str) -> Optional[str]:
        """`path` as this machine sees it (expanded, absolute), when the
        target is this machine; None over SSH."""
        return os.path.abspath(os.path.expanduser(path)) if self.is_local else None

    @property
    def transport(self):
        """The SSH transport; None on this machine (or before connecting)."""
        if self.is_local:
            return None
        return self.c.client.get_transport()

    @property
    def alive(self) -> bool:
        """Whether the SSH link is up (always True on this machine)."""
        if self.is_local:
            return True
        t = self.transport
        return bool(t and t.is_active())

    # ------------------------------------------------------------ commands
    def run(self, cmd, what: str = "", *, check: bool = True, timeout: Optional[float] = None,
            env: Optional[Dict[str, str]] = None, argv: Optional[Iterable[str]] = None,
            stdin: Union[str, bytes, None] = None, **kwargs: Any):
        """Run a built command (a shell.Cmd: a plain str is refused), output
        captured. No stdin, unless `stdin` is given: that text (bytes must be
        UTF-8) is the command's standard input, then end of file. It is how
        a secret reaches a command without being in any argv `ps` shows
        (docs/security.md). With `check` a failure raises CommandFailed
        ("WHAT failed: <its last line>"), or SudoError when sudo wanted a
        password for `argv`; without it the invoke Result comes back."""
        opts: Dict[str, Any] = dict(hide=True, warn=True, in_stream=False)
        if stdin is not None:
            opts.update(in_stream=Feed(stdin), encoding="utf-8")
        if timeout is not None:
            opts["timeout"] = timeout
        if env and self.is_local:
            opts["env"] = env  # the child's environment, no shell involved
            env = None
        shown, cmd = as_cmd(cmd), self.prepare(cmd, env)
        opts.update(kwargs)
        start, result = time.monotonic(), None
        try:
            result = self.c.run(as_cmd(cmd), **opts)
        except Exception as exc:
            # Invoke's ThreadException, looked up only where Invoke is loaded
            # (the cron fast path runs without it: host/localrun.py)
            invoke_errors = sys.modules.get("invoke.exceptions")
            if stdin is None or invoke_errors is None or not isinstance(exc, invoke_errors.ThreadException):
                raise
            # Over SSH, a command that ended before reading all its input
            # closes the channel under the writer (a local pipe ignores it).
            raise CommandFailed(f"{what or 'a command'} failed: it ended before reading all of its input",
                                host=self.name) from None
        finally:  # a command that timed out or lost its link is shown too
            commands = _commands()
            if commands is not None and commands.isEnabledFor(10):  # logging.DEBUG
                commands.debug("%s: %s (exit %s, %.2f s)", self.name, shown,
                               "none: it raised" if result is None else result.exited, time.monotonic() - start)
        if check and not result.ok:
            err = sudo_failure(result.stderr, list(argv), host=self.name) if argv is not None else None
            raise err or CommandFailed.from_result(what or "a command", result, host=self.name)
        return result

    def prepare(self, cmd, env: Optional[Dict[str, str]] = None):
        """The command as it is sent over SSH: the host's env.sh sourced,
        then a call's own env as quoted exports (Fabric's inline env would
        put `export K=V` unquoted: a value with a space or `$(...)` would be
        shell code)."""
        cmd = with_env(as_cmd(cmd), env) if env else as_cmd(cmd)
        if self.env_file and not self.is_local:
            from .shell import sh, source_env

            cmd = sh("{env}{cmd}", env=source_env(self.env_file), cmd=cmd)
        return cmd

    def ok(self, cmd, **kwargs: Any) -> bool:
        """Whether the command exits 0 (a test: never raises for its exit)."""
        return self.run(cmd, check=False, **kwargs).ok

    def output(self, cmd, **kwargs: Any) -> str:
        """The command's stdout, whatever its exit (reads that may find nothing)."""
        return self.run(cmd, check=False, **kwargs).stdout

    def sudo(self, argv: Iterable[str], what: str = "", *, check: bool = True, **kwargs: Any):
        """Run `argv` as root with `sudo -n` (never a prompt): the exact argv
        the sudoers drop-in allows (docs/security.md)."""
        argv = list(argv)
        return self.run(sudo_cmd(argv), what or join(argv), check=check, argv=argv, **kwargs)

    # ------------------------------------------------------------ files
    def put(self, local: str, remote: str) -> None:
        """Upload a file: SFTP over SSH (`remote` relative to the login home
        or absolute), a copy on this machine (`remote` under ~ or absolute).
        Its directory must exist, on both (SFTP makes none)."""
        if not self.is_local:
            self.c.put(local, remote=remote)
            return
        dest = os.path.expanduser(remote if remote.startswith("/") else "~/" + remote)
        import shutil

        shutil.copyfile(local, dest)

    def get(self, remote: str, local: str) -> None:
        """Download a file (`remote` may start with ~/): SFTP, or a copy."""
        if not self.is_local:
            self.c.get(remote[2:] if remote.startswith("~/") else remote, local=local)
            return
        import shutil

        shutil.copyfile(os.path.expanduser(remote), local)

    # ------------------------------------------------------------ streams
    def stream(self, cmd, *, pty: bool = False, timeout: Optional[float] = None,
               env: Optional[Dict[str, str]] = None):
        """Start a long-running command and read its output as it comes
        (`logs --follow`, a deploy's events, the held lock). Returns a
        channel: recv(n) (b"" at the end), settimeout, send, shutdown_write,
        exit_status_ready, recv_exit_status, close. Over SSH it is paramiko's
        own channel; `pty` ties the remote processes to it, so closing it
        ends them. On this machine a child process in its own group."""
        cmd = as_cmd(cmd)
        if self.is_local:
            return LocalStream(cmd, env=env)
        cmd = self.prepare(cmd, env)  # as in run()
        chan = self.transport.open_session(timeout=timeout)
        if timeout is not None:
            chan.settimeout(timeout)
        if pty:
            chan.get_pty(term="dumb", width=500)
        chan.exec_command(cmd)
        return chan


class UserTarget(Target):
    """The same SSH host as `base`, as another user. `inv setup` logs in as
    the setup user (full sudo) and does the deploy user's own part (fabops'
    venv, host.yml, the crontab, the wrappers) as the deploy user, through
    `sudo -n -u USER -H`, so the deploy user needs no sudo rule beyond
    fabops' drop-in (docs/security.md, "The paths to root, closed"). Every
    command starts in that user's home, and `~/` is that home."""

    def __init__(self, base: Target, user: str):
        super().__init__(base.c, name=base.name, home=base.home, env_file=base.env_file)
        self.user = user

    def __repr__(self) -> str:
        return f"UserTarget({self.name!r}, {self.user!r})"

    def as_user(self, cmd) -> Any:
        from .shell import sh

        return sh("sudo -n -u {user} -H -- sh -c {cmd}", user=self.user, cmd=str(sh("cd && {c}", c=as_cmd(cmd))))

    def prepare(self, cmd, env: Optional[Dict[str, str]] = None):
        # everything inside, as the user: sudo resets the environment it is
        # given, and the env.sh to source is that user's
        return self.as_user(super().prepare(cmd, env))

    def run(self, cmd, what: str = "", *, argv: Optional[Iterable[str]] = None, **kwargs: Any):
        return super().run(cmd, what, argv=["-u", self.user, "sh"] if argv is None else argv, **kwargs)

    def put(self, local: str, remote: str) -> None:
        """Upload as the login user into its own home, then write the file
        as this user (`remote` relative to this user's home, or absolute)."""
        from .shell import path, sh

        staged = f".fabops-upload-{os.getpid()}-{posixpath.basename(remote)}"
        super().put(local, staged)
        dest = path(remote if remote.startswith(("/", "~/")) else "~/" + remote)
        Target(self.c, self.name, self.home).run(sh("{write} < {staged}; rc=$?; rm -f {staged}; exit $rc",
                            write=self.as_user(sh("cat > {dest}", dest=dest)), staged=path("~/" + staged)),
                   f"writing {remote} as {self.user}", argv=["-u", self.user, "sh"])

    def get(self, remote: str, local: str) -> None:
        raise NotImplementedError("UserTarget reads no files back")

    def stream(self, cmd, **kwargs: Any):
        raise NotImplementedError("UserTarget streams nothing")


class Feed:
    """`Target.run`'s stdin, as invoke's runner reads it. The runner reads a
    stream that is not a terminal one byte per call and naps 2 ms between
    calls (shell.tune_runner): 1 MB would take half an hour. This hands it
    64 Ki characters a call, then "" (end of file), on which invoke closes
    the command's stdin: the pipe here, `shutdown_write` of the SSH channel
    (fabric's Remote.close_proc_stdin), so `cat` and `crontab -` end. Text,
    not bytes: the runner encodes what it is given (encoding utf-8).
    Public: maintenance/backup's restore feeds its input through a subclass
    of it (#24: no module imports another's private name)."""

    CHUNK = 1 << 16

    def __init__(self, data: Union[str, bytes]):
        self.text = data.decode("utf-8") if isinstance(data, bytes) else data
        self.pos = 0

    def read(self, _size: int = -1) -> str:
        chunk = self.text[self.pos:self.pos + self.CHUNK]
        self.pos += len(chunk)
        return chunk

    def isatty(self) -> bool:
        return False


class LocalStream:
    """A child `sh -c` with the subset of paramiko's Channel that fabops'
    streams read with, so one reading loop serves both: recv (b"" at the
    end, and after it), settimeout, send(b"\\x03") as a pty's ^C,
    exit_status_ready, recv_exit_status, close. It takes no input (stdin is
    /dev/null, as for every fabops command). The child leads its own
    process group: close() ends it and everything it started."""

    def __init__(self, cmd: str, env: Optional[Dict[str, str]] = None):
        import subprocess  # here, not at the top: the cron path never streams

        full = dict(os.environ)
        full.update(env or {})
        self.proc = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True, env=full)
        self.timeout: Optional[float] = None

    def settimeout(self, timeout: Optional[float]) -> None:
        self.timeout = timeout

    def recv(self, n: int) -> bytes:
        """Up to n bytes; b"" at the end; socket.timeout after `timeout`."""
        import select
        import socket

        out = self.proc.stdout
        if out.closed:
            return b""
        if self.timeout is not None:
            poll = select.poll()  # not select(): any fd number works
            poll.register(out.fileno(), select.POLLIN | select.POLLHUP)
            if not poll.poll(self.timeout * 1000):
                raise socket.timeout("no output")
        data = os.read(out.fileno(), n)
        if not data:
            out.close()
            self.proc.wait()
        return data

    def send(self, data: bytes) -> int:
        if data != b"\x03":
            raise OSError("a local stream takes no input")
        self._signal(signal.SIGINT)  # ^C, as a pty would deliver it
        return 1

    def shutdown_write(self) -> None:
        """Nothing to do: the child's stdin is /dev/null."""

    def exit_status_ready(self) -> bool:
        return self.proc.poll() is not None

    def recv_exit_status(self) -> int:
        return self.proc.wait()

    def _signal(self, sig) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except OSError:
                pass

    def close(self) -> None:
        """End the group and reap the child. The reading side is left open:
        another thread may be in recv(), which now sees the end (b"")
        rather than a closed fd."""
        import subprocess

        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait()
