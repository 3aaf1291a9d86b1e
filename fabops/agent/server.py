"""The agent process: `python -m fabops.agent` (started by the client,
gone after FABOPS_AGENT_IDLE seconds without a request). See
docs/architecture.md, "The agent".

Three kinds of process:
- the listener (this module's `serve`): accepts connections on the
  socket, checks each peer's uid (SO_PEERCRED), keeps the SSH transports
  (relay.py) and answers status, stop and forget;
- the forker: forked from the listener once, after the imports and before
  any thread, so it is single-threaded and can fork safely. The listener
  hands it each run request with the client's socket, stdin, stdout and
  stderr;
- a run: the forker's child. It takes the client's three descriptors as
  its own 0, 1 and 2, the client's directory, environment and argv, and
  runs fabops' command-line program, as `fabops` would have: same
  rendering (it writes to the client's terminal itself), same exit code,
  sent back on the client's socket. The client forwards its signals to the
  run's process group, so Ctrl-C is a real SIGINT there."""
from __future__ import annotations

import io
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Optional

from . import where, wire

# What a run imports, imported once in the agent so that every run starts
# with it: the console script's program and task tree, the SSH stack and
# the renderer, down to what a first table or emoji loads (a run's import
# would cost it a few milliseconds each time: `python -m bench agent`).
WARM = ("fabric", "paramiko", "rich.console", "rich.panel", "rich.table", "rich._emoji_codes", "fabops.ci",
        "fabops.cli", "fabops.completion", "fabops.connection", "fabops.deploy", "fabops.fanout",
        "fabops.host.dry_run", "fabops.host.health", "fabops.host.heartbeat", "fabops.host.metrics",
        "fabops.host.monitorfacts", "fabops.host.pipeline", "fabops.install", "fabops.logs", "fabops.maintenance",
        "fabops.monitor", "fabops.notify", "fabops.openssh", "fabops.selfwheel", "fabops.setup", "fabops.tasks",
        "fabops.tasks.program", "fabops.tasks.render", "fabops.agent.client", "fabops.agent.proxy", "invoke.main",
        "concurrent.futures.thread")
# The packages whose modules a run should find imported already: one it
# imports itself is logged (_note_cold_imports), so a module the everyday
# commands came to need is seen missing from WARM (tests/test_agent.py).
HELD = ("fabops", "fabric", "paramiko", "invoke", "rich", "yaml")


def warm() -> None:
    import importlib

    for name in WARM:
        importlib.import_module(name)
    try:  # rich's cell-width table (rich 14 and later): a run whose UNICODE_VERSION names another loads that one
        from rich._unicode_data import load

        load("latest")
    except Exception:  # noqa: BLE001 - a private API of rich's: a warm-up only, never the agent's failure
        pass


class Agent:
    def __init__(self, directory: str):
        self.directory = directory
        self.path = where.socket_path(directory)
        self.log_file = open(os.path.join(directory, "agent.log"), "a", buffering=1)
        os.chmod(self.log_file.name, 0o600)
        self.started = time.time()
        self.last = time.monotonic()
        self.busy = 0  # connections being served (relays included)
        self.runs = {}  # pid -> started, from the forker
        self.stopping = threading.Event()
        self.stepped_aside = False
        self.stamp = where.code_stamp()  # before the imports: what the runs will run
        self.lock = threading.Lock()
        from .relay import Transports

        self.transports = Transports(self.log)

    def log(self, line: str) -> None:
        """One line: what happened, never a command's text or environment."""
        self.log_file.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + f"[{os.getpid()}] {line}\n")

    # ------------------------------------------------------------ the socket
    def bind(self) -> Optional[socket.socket]:
        """The listening socket; None when a live agent already has it. A
        socket file nobody answers on (an agent that was killed) is replaced."""
        if os.path.exists(self.path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                return None
            except OSError:
                os.unlink(self.path)
            finally:
                probe.close()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: no moment where it is wider
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(64)
        return listener

    def serve(self, listener: socket.socket, forker: socket.socket) -> None:
        self.forker = forker
        self.forker_lock = threading.Lock()
        threading.Thread(target=self._hear_forker, daemon=True).start()
        listener.settimeout(0.5)
        idle = where.idle_seconds()
        self.log(f"listening on {self.path} (idle timeout {idle:g} s)")
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                self.transports.expire(idle)
                with self.lock:
                    quiet = not self.busy and not self.runs
                if quiet and time.monotonic() - self.last > idle:
                    self.log("idle: stopping")
                    break
                continue
            conn.settimeout(None)
            with self.lock:
                self.busy += 1
                self.last = time.monotonic()
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()
        self.leave(listener)  # first: a new command starts a new agent, never waits on this one
        self.drain()
        self.shut()

    def drain(self, limit: float = 600.0) -> None:
        """Before ending: the runs in flight use this listener's transports
        for their channels; let them finish (up to the idle time's default)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self.lock:
                if not self.runs and self.busy == 0:
                    return
            time.sleep(0.05)  # polling the runs and relays this process serves

    def step_aside(self, why: str) -> None:
        """Leave the socket to a new agent now; stop once the runs in flight
        are done."""
        with self.lock:
            if self.stepped_aside:
                return
            self.stepped_aside = True
        self.log(f"{why}: stopping, for a new one")
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self.stopping.set()

    def leave(self, listener: socket.socket) -> None:
        if not self.stepped_aside:
            self.stepped_aside = True
            try:
                os.unlink(self.path)
            except OSError:
                pass
        listener.close()

    def shut(self) -> None:
        self.transports.close_all()
        self.forker.close()  # the forker ends; runs in flight finish on their own
        self.log("stopped")

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            uid = wire.peer_uid(conn)
            if uid != os.getuid():
                self.log(f"refused a connection from uid {uid}")
                return
            header, _, fds = wire.recv(conn, max_fds=3)
            if header is not None:
                self._dispatch(conn, header, fds)
        except (OSError, wire.WireError, ValueError) as exc:
            self.log(f"a request failed: {exc.__class__.__name__}: {exc}")
        finally:
            conn.close()
            with self.lock:
                self.busy -= 1
                self.last = time.monotonic()

    def _dispatch(self, conn: socket.socket, header: dict, fds) -> None:
        op = header.get("op")
        if op == "run":
            self._run(conn, header, fds)
            return
        for fd in fds:
            os.close(fd)
        if op in ("attach", "channel", "probe"):
            self._ssh(conn, op, header)
        elif op == "status":
            wire.send(conn, self.status())
        elif op == "forget":
            wire.send(conn, {"forgot": self.transports.forget(str(header.get("host")))})
        elif op == "stop":
            with self.lock:
                runs = len(self.runs)
            wire.send(conn, {"stopping": True, "pid": os.getpid(), "runs": runs})
            self.stopping.set()
        else:
            wire.send(conn, {"error": {"kind": "UsageError", "text": f"the agent has no request {op!r}"}})

    def _run(self, conn: socket.socket, header: dict, fds) -> None:
        if header.get("stamp") != self.stamp:
            # fabops changed under us: leave the socket to a new agent at
            # once, finish what runs, then stop
            for fd in fds:
                os.close(fd)
            self.step_aside("fabops changed since this agent started")
            wire.send(conn, {"stale": True})
            return
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            wire.send(conn, {"exit": 70, "error": "the request came without its stdin, stdout and stderr"})
            return
        try:
            with self.forker_lock:
                wire.send(self.forker, header, fds=[conn.fileno()] + list(fds))
        finally:
            for fd in fds:
                os.close(fd)

    def _ssh(self, conn: socket.socket, op: str, header: dict) -> None:
        from ..errors import FabopsError

        from .relay import Relay, error_frame

        if header.get("home") != os.environ.get("HOME"):
            # known_hosts, ~/.ssh/config and keys are HOME's: another HOME's
            # run connects itself, as without the agent
            wire.send(conn, {"direct": True})
            return
        try:
            if op == "attach":
                entry = self.transports.attach(header)
                wire.send(conn, {"ok": True, "peer": list(entry.transport.getpeername()[:2])})
                return
            if op == "probe":
                entry = self.transports.find(header["login"][0])
                wire.send(conn, {"answered": bool(entry and entry.answers(PROBE_WAIT))})
                return
            entry, link, chan = self.transports.open_channel(header, header.get("timeout"))
        except FabopsError as exc:
            wire.send(conn, error_frame(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a dead link, told to the run as one
            wire.send(conn, error_frame(exc))
            return
        wire.send(conn, {"ok": True})
        Relay(conn, chan, entry, link, self.transports).serve()

    def _hear_forker(self) -> None:
        """The forker's news: a run started (its pid), a run ended. A forker
        that is gone (killed, out of memory) can start no run: a new agent
        takes over."""
        try:
            while True:
                header, _, _ = wire.recv(self.forker)
                if header is None:
                    if not self.stopping.is_set():
                        self.step_aside("the forker ended")
                    return
                with self.lock:
                    if "started" in header:
                        self.runs[header["started"]] = time.time()
                    else:
                        self.runs.pop(header.get("ended"), None)
                        self.last = time.monotonic()
        except (OSError, wire.WireError):
            return

    def status(self) -> dict:
        with self.lock:
            runs = len(self.runs)
        return {"pid": os.getpid(), "since": self.started, "idle_timeout": where.idle_seconds(),
                "socket": self.path, "log": self.log_file.name, "runs": runs,
                "transports": self.transports.status()}


# ---------------------------------------------------------------- the forker
PROBE_WAIT = 3.0  # a keepalive unanswered this long: the link is gone


def forker_loop(sock: socket.socket, socket_path: str) -> None:
    """Fork a run for each request; tell the listener which run started
    and which ended. Single-threaded, so a fork copies no held lock."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # a run's end wakes the loop (its exit is news for `agent status` and
    # the idle timer), through a pipe the signal writes to
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    live = set()
    while True:
        ready, _, _ = select.select([sock, woken], [], [], 5.0)
        if woken in ready:
            os.read(woken, 512)
        _reap(sock, live)
        if sock not in ready:
            continue
        header, _, fds = wire.recv(sock, max_fds=4)
        if header is None:
            os._exit(0)
        try:
            pid = os.fork()
        except OSError as exc:  # no process to spare: the client runs the command itself
            with socket.socket(fileno=fds[0]) as conn:
                wire.send(conn, {"unavailable": f"the agent cannot fork: {exc.strerror}"})
            for fd in fds[1:]:
                os.close(fd)
            continue
        if pid == 0:
            sock.close()
            signal.set_wakeup_fd(-1)
            os.close(woken)
            os.close(wake)
            run(header, fds, socket_path)  # never returns
        for fd in fds:
            os.close(fd)
        live.add(pid)
        wire.send(sock, {"started": pid})


def _reap(sock: socket.socket, live: set) -> None:
    for pid in list(live):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            live.discard(pid)
            wire.send(sock, {"ended": pid})


def run(header: dict, fds, socket_path: str) -> None:
    """A run: the client's descriptors, directory, environment and argv,
    then fabops' program; the exit code goes back on the client's socket."""
    code = 70
    held = set(sys.modules)
    conn = socket.socket(fileno=fds[0])
    try:
        os.setpgid(0, 0)  # the client signals this group, as a terminal would its foreground group
        _take_over(header, fds[1:], conn)
        from . import proxy

        proxy.install(socket_path)
        wire.send(conn, {"pid": os.getpid()})
        threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
        code = _program(header.get("binary", "fabops"), header["argv"])
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # noqa: BLE001 - a bug of ours: shown as Python would, never lost
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client hangs up once it has the code
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed terminal
                pass
        try:
            wire.send(conn, {"exit": code})
        except OSError:
            pass
        _note_cold_imports(held, socket_path)  # after the client has its code: never on its time
        os._exit(code)


def _note_cold_imports(held: set, socket_path: str) -> None:
    """One line in agent.log naming the modules of fabops and the packages
    it runs on that this run imported itself: each is paid on every warm
    run of that command (a few ms from its cached bytecode) until WARM
    holds it. Module names only, never a command's text."""
    cold = sorted(name for name in set(sys.modules) - held if name.split(".")[0] in HELD)
    if not cold:
        return
    try:
        with open(os.path.join(os.path.dirname(socket_path), "agent.log"), "a") as log:
            log.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + f"[{os.getpid()}] imported what the agent does not "
                      f"hold: {', '.join(cold)}\n")
    except OSError:
        pass


def _take_over(header: dict, stdio, conn: socket.socket) -> None:
    for sig in (signal.SIGCHLD, signal.SIGWINCH):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, _dying(conn))
    for sig in header.get("ignored") or ():  # as the client inherited them (`nohup`)
        signal.signal(sig, signal.SIG_IGN)
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(header["env"])
    os.environ["FABOPS_AGENT_RUN"] = "1"
    # whether the client is its terminal's foreground job (this run is in
    # another session, where the terminal cannot tell): tasks/observe.py
    os.environ["FABOPS_AGENT_FOREGROUND"] = "1" if header.get("foreground") else "0"
    time.tzset()
    try:
        os.chdir(header["cwd"])
    except OSError as exc:
        raise SystemExit(f"fabops: cannot enter {header['cwd']}: {exc.strerror}")
    encoding = os.environ.get("PYTHONIOENCODING", "").split(":")[0] or "utf-8"
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)
    sys.stdout = sys.__stdout__ = _writer(1, encoding, "strict")
    sys.stderr = sys.__stderr__ = _writer(2, encoding, "backslashreplace")
    sys.argv = list(header["argv"])


def _dying(conn: socket.socket):
    """SIGTERM, SIGHUP, SIGQUIT: the run dies of it, as a direct run would,
    and tells the client first, which then dies of it too (its shell sees
    143, not an exit code of ours)."""
    def die(signum, _frame):
        try:
            wire.send(conn, {"killed": signum})
        except OSError:
            pass
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return die


def _writer(fd: int, encoding: str, errors: str):
    tty = os.isatty(fd)
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding, errors=errors,
                            line_buffering=tty or fd == 2, write_through=fd == 2)


def _watch_client(conn: socket.socket) -> None:
    """The client went away (its terminal closed, it was killed): end the
    run as Ctrl-C would, so its remote processes end too."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGINT)


def _program(binary: str, argv) -> int:
    """`fabops`'s program, or Invoke's `inv` with fabops' parse contract
    (tasks/program.serve_inv: the task tree was imported before `inv`'s
    program existed, here)."""
    from ..shell import set_program

    set_program(binary)  # the hints name what the client ran (shell.program)
    try:
        if binary == "inv":
            import invoke.main

            from ..tasks.program import serve_inv

            serve_inv()
            invoke.main.program.run(argv)
        else:
            from ..cli import run_program

            run_program(argv)
    except SystemExit as exc:
        return _exit_code(exc)
    return 0


def _exit_code(exc: SystemExit) -> int:
    """The code Python's own exit would give (a message: printed, then 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def main() -> None:
    directory = where.ensure_dir(where.socket_dir())
    agent = Agent(directory)
    listener = agent.bind()
    if listener is None:
        return  # another agent has it
    warm()
    ours, theirs = socket.socketpair()
    if os.fork() == 0:
        ours.close()
        listener.close()
        forker_loop(theirs, agent.path)
    theirs.close()
    # `kill PID` stops it as `fabops agent stop` does: socket removed, transports closed
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stopping.set())
    agent.serve(listener, ours)
