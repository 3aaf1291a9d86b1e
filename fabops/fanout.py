"""Run one function on many hosts in bounded parallel and collect every result.

Like Fabric's Group: every host runs, each result or error is kept, and the
caller decides once at the end, so one bad host never hides the others.
Returns data; the task layer prints it (tasks/render.PrefixWriter writes
host-prefixed lines that never interleave).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence

from .errors import INTERNAL, OK, FabopsError, quiet_closed_pipe, stdout_reader_gone, worst

DEFAULT_PARALLEL = 10


@dataclass
class HostResult:
    host: str
    value: Any = None
    error: Optional[BaseException] = None
    seconds: float = 0.0
    code: int = OK  # exit code for this host

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class FanoutResult:
    results: List[HostResult] = field(default_factory=list)

    @property
    def code(self) -> int:
        return worst(r.code for r in self.results)

    def values(self) -> dict:
        return {r.host: r.value for r in self.results}


def _code_of(value: Any) -> int:
    code = getattr(value, "exit_code", OK)
    return code if isinstance(code, int) else OK


def map_failure(exc: BaseException, host: Optional[str] = None) -> Optional[FabopsError]:
    """Known failures of the transport as fabops errors: a command that timed
    out or a connection that died is UNREACHABLE (3), not a bug."""
    from .errors import UnreachableError

    name = exc.__class__.__name__
    if name == "CommandTimedOut":
        return UnreachableError(f"a command on the host timed out after {getattr(exc, 'timeout', '?')} s "
                                "(the host or its session hangs)", host=host)
    if name in ("SSHException", "EOFError", "NoValidConnectionsError", "ChannelException") or isinstance(
            exc, (ConnectionError, EOFError)):
        return UnreachableError(f"the connection failed: {exc or name}", host=host)
    return None


def run_hosts(
    hosts: Sequence[Any],
    fn: Callable[[Any], Any],
    *,
    parallel: int = DEFAULT_PARALLEL,
    on_done: Optional[Callable[[HostResult], None]] = None,
) -> FanoutResult:
    """Call `fn(host)` for every host with at most `parallel` at once.

    A FabopsError becomes that host's result with its exit code; any other
    exception is kept as an internal error (code 70) for that host only.
    Results come back in the order of `hosts`.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")

    def one(host) -> HostResult:
        name = getattr(host, "name", str(host))
        started = time.monotonic()
        try:
            value = fn(host)
            res = HostResult(name, value=value, code=_code_of(value))
        except FabopsError as exc:
            res = HostResult(name, error=exc, code=exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - mapped below
            if isinstance(exc, BrokenPipeError) and stdout_reader_gone():
                # the worker printed (setup's items, deploy's steps) to a
                # `| head` that has gone: not the host's connection
                quiet_closed_pipe()
            mapped = map_failure(exc, name)
            res = HostResult(name, error=mapped or exc, code=mapped.exit_code if mapped else INTERNAL)
        res.seconds = time.monotonic() - started
        if on_done is not None:
            on_done(res)
        return res

    if len(hosts) == 1 or parallel == 1:
        return FanoutResult([one(h) for h in hosts])
    with ThreadPoolExecutor(max_workers=min(parallel, len(hosts)), thread_name_prefix="fabops") as pool:
        return FanoutResult(list(pool.map(one, hosts)))
