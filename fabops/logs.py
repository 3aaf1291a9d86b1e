"""`inv logs`: read or follow service output and fabops' own logs on hosts.

Following runs the remote `tail -F`/`journalctl -f` under a pty: when the
laptop stops (Ctrl-C), closing the channel hangs up the pty and the kernel
ends the whole remote process group, so no `tail` is left behind.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import List, Optional

from . import errors
from .errors import UsageError
from .host.services import journal_cmd, process_log_path
from .inventory import Host, Inventory
from .shell import q, quote_path

COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green")


def log_command(host: Host, source: str, service: Optional[str], lines: int, errors_only: bool,
                since: Optional[str], follow: bool) -> str:
    """The shell command that prints (or follows) the chosen log on the host."""
    lines = max(1, int(lines))
    grep = " | grep --line-buffered -i error" if errors_only else ""
    if source == "journal":
        chosen = [host.service(service)] if service else list(host.services)
        if not chosen:
            raise UsageError("no services configured", host=host.name)
        units = [s for s in chosen if s.manager == "systemd"]
        files = [process_log_path(host.home.rstrip("/"), s) for s in chosen if s.manager == "process"]
        cmds = []
        if units:
            argv = ["journalctl", "--no-pager", "-o", "short-iso"]
            for u in units:
                argv += ["-u", u.name]
            if since or errors_only:
                argv += ["--since", since or "-24h"]
            if follow:
                argv += ["-n", str(lines), "-f"]
            elif not errors_only:
                argv += ["-n", str(lines)]
            cmds.append(" ".join(q(a) for a in argv) + grep + ("" if follow or not errors_only else f" | tail -n {lines}"))
        if files:
            cmds.append(_file_cmd(files, lines, errors_only, follow))
        if follow and len(cmds) > 1:
            return " & ".join(cmds) + " & wait"
        return "; ".join(cmds)
    if source in ("update", "health", "app"):
        path = host.logs.get(source)
        if not path:
            if source == "app":
                raise UsageError("no `logs.app` path in hosts.yml for this host", host=host.name)
            path = f"{host.home.rstrip('/')}/{source}.log"
        return _file_cmd([path], lines, errors_only, follow)
    raise UsageError(f"unknown log source {source!r}")


def _file_cmd(paths: List[str], lines: int, errors_only: bool, follow: bool) -> str:
    files = " ".join(quote_path(p) for p in paths)
    if follow:
        cmd = f"tail -q -n {lines} -F {files} 2>/dev/null"
        return cmd + (" | grep --line-buffered -i error" if errors_only else "")
    if errors_only:
        return f"cat {files} 2>/dev/null | grep -i error | tail -n {lines}"
    return f"tail -q -n {lines} {files} 2>/dev/null"


class _Out:
    """Host-prefixed, coloured lines on stdout; whole lines only."""

    lock = threading.Lock()

    def __init__(self, name: str, color: str, width: int, plain: bool):
        self.prefix = (f"{name}".ljust(width) + " | ") if plain else None
        self.rich_prefix = f"[{color}]{name.ljust(width)}[/{color}] | "
        self.buf = ""
        self.plain = plain

    def feed(self, text: str) -> None:
        self.buf += text.replace("\r\n", "\n").replace("\r", "\n")
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self.line(line)

    def line(self, line: str) -> None:
        with self.lock:
            if self.plain:
                sys.stdout.write(self.prefix + line + "\n")
            else:
                from rich.markup import escape

                from .render import console

                console().print(self.rich_prefix + escape(line), soft_wrap=True)
            sys.stdout.flush()

    def close(self) -> None:
        if self.buf:
            self.line(self.buf)
            self.buf = ""


def _outs(hosts: List[Host]):
    width = max(len(h.name) for h in hosts)
    plain = not sys.stdout.isatty()
    return {h.name: _Out(h.name, COLORS[i % len(COLORS)], width, plain) for i, h in enumerate(hosts)}


def read_logs(inv: Inventory, hosts: List[Host], *, source, service, lines, errors_only, since,
              accept_new=False, connect_timeout=None) -> int:
    from .connection import close_quietly, connect
    from .fanout import run_hosts
    from .render import host_errors

    def one(host):
        cmd = log_command(host, source, service, lines, errors_only, since, follow=False)
        cxn = connect(host, inv, accept_new=accept_new, connect_timeout=connect_timeout)
        try:
            return cxn.run(cmd, hide=True, warn=True, in_stream=False).stdout
        finally:
            close_quietly(cxn)

    outcome = run_hosts(hosts, one)
    outs = _outs(hosts) if len(hosts) > 1 else None
    for r in outcome.results:
        if r.ok:
            if outs:
                outs[r.host].feed(r.value)
                outs[r.host].close()
            else:
                sys.stdout.write(r.value)
    sys.stdout.flush()
    host_errors(outcome.results)
    return outcome.code


def follow_logs(inv: Inventory, hosts: List[Host], *, source, service, lines, errors_only, since,
                accept_new=False, connect_timeout=None) -> int:
    """Follow on every host at once until Ctrl-C (exit 0) or every stream ends."""
    from .connection import close_quietly, connect

    cmds = {h.name: log_command(h, source, service, lines, errors_only, since, follow=True) for h in hosts}
    outs = _outs(hosts)
    streams = []
    failures = []

    for host in hosts:
        try:
            cxn = connect(host, inv, accept_new=accept_new, connect_timeout=connect_timeout)
        except errors.FabopsError as exc:
            failures.append(exc)
            sys.stderr.write(f"fabops: {exc}\n")
            continue
        streams.append(_Stream(host, cxn, cmds[host.name], outs[host.name]))
    for st in streams:
        st.start()
    try:
        while any(st.thread.is_alive() for st in streams):
            for st in streams:
                st.thread.join(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for st in streams:
            st.stop()
        for st in streams:
            close_quietly(st.cxn)
    return errors.worst(f.exit_code for f in failures)


class _Stream:
    def __init__(self, host: Host, cxn, cmd: str, out: _Out):
        self.host = host
        self.cxn = cxn
        self.cmd = cmd
        self.out = out
        self.chan = None
        self.proc = None
        self.thread = threading.Thread(target=self.run, name=f"logs-{host.name}", daemon=True)

    def start(self):
        self.thread.start()

    def run(self):
        if not hasattr(self.cxn, "client"):  # local: our own process group
            self.proc = subprocess.Popen(["sh", "-c", self.cmd], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         stdin=subprocess.DEVNULL, start_new_session=True, env=_env(self.host))
            for raw in iter(lambda: self.proc.stdout.readline(), b""):
                self.out.feed(raw.decode("utf-8", "replace"))
            self.out.close()
            return
        transport = self.cxn.client.get_transport()
        self.chan = transport.open_session()
        self.chan.get_pty(term="dumb", width=500)  # the pty ties the remote processes to this channel
        self.chan.exec_command(self.cmd)
        try:
            while True:
                data = self.chan.recv(65536)
                if not data:
                    break
                self.out.feed(data.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - the channel was closed by stop()
            pass
        self.out.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
        if self.chan is not None:
            try:
                self.chan.send(b"\x03")  # ^C through the pty: SIGINT to the remote group
            except Exception:  # noqa: BLE001
                pass
            try:
                self.chan.close()  # and the hang-up, for anything that ignored it
            except Exception:  # noqa: BLE001
                pass


def _env(host: Host):
    env = dict(os.environ)
    env.update(host.env or {})
    return env
