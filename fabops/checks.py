"""The port and HTTP checks a laptop runs on a host over the connection
(agentless: POSIX sh, and the host's python3 for HTTP). The ports and URLs
are the host's own loopback, never reachable from the laptop."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from .host import httpcheck, listeners
from .shell import Cmd, lines, path, raw, sh
from .target import Target


def port_listening_cmd(port: int) -> Cmd:
    """Exit 0 when something listens on TCP `port` (any address). Uses `ss`
    when present, else /proc/net/tcp{,6} (state 0A is LISTEN)."""
    port = int(port)
    return sh("if command -v ss >/dev/null 2>&1; then ss -Hltn {sport} | grep -q .; "
              "else awk {prog} /proc/net/tcp /proc/net/tcp6 2>/dev/null; fi",
              sport=f"sport = :{port}", prog=f'$2 ~ /:{port:04X}$/ && $4 == "0A" {{f=1}} END {{exit !f}}')


def listeners_source() -> str:
    """host/listeners.py's text: run as `python3 -c` source on a host."""
    return Path(listeners.__file__).read_text(encoding="utf-8")


def port_owner_cmd(port: int, pid: Optional[int], systemd: bool, unit: str = "") -> Cmd:
    """host/listeners.py on the host's python3: one JSON line saying whose
    the LISTEN socket on `port` is (a host without python3: an empty line,
    read as "unverified")."""
    return sh("if command -v python3 >/dev/null 2>&1; then python3 -I -S -c {source} {port} {pid} {kind}; "
              "else echo; fi", source=listeners_source(), port=str(port),
              pid=str(pid) if pid else "-", kind=("systemd:" + unit if unit else "systemd") if systemd else "process")


def recorded_owners_cmd(host) -> Cmd:
    """Whose each declared port's listener is, as the deploy preflight
    (host/readiness.held_ports) asks it: each service's main PID as its
    status gives it (systemd's MainPID, the pidfile's PID even when that
    process is gone: its group's remnants are the service's own), then one
    python3 for every port, one JSON line each in host.services' order
    (parse_owners). Nothing when no service declares a port."""
    ported = [svc for svc in host.services if svc.port]
    if not ported:
        return sh("")
    parts: List[Cmd] = [raw("OA=")]
    for svc in ported:
        if svc.manager == "systemd":
            pid = sh("P=$(systemctl show -p MainPID --value {u} 2>/dev/null)", u=svc.name)
        else:
            pid = sh("P=-; if [ -r {pf} ] && read -r P1 S1 < {pf}; then P=$P1; fi",
                     pf=path(host.paths.service_pid(svc.name)))
        # systemd:UNIT: what is left of a unit not running (its cgroup) is its own (listeners.service_procs)
        parts.append(sh('{pid}; OA="$OA "{port}" ${{P:--}} "{kind}', pid=pid, port=str(svc.port),
                        kind=f"systemd:{svc.name}" if svc.manager == "systemd" else "process"))
    parts.append(sh("command -v python3 >/dev/null 2>&1 && python3 -I -S -c {source} $OA; true",
                    source=listeners_source()))
    return lines(parts)


def parse_owners(text: str, host) -> dict:
    """{service: listeners.PortOwner} from the owners' JSON lines, in
    host.services' order (none when the host has no python3)."""
    found = [line for line in text.splitlines() if line.strip()]
    ported = [svc for svc in host.services if svc.port]
    return {svc.name: listeners.from_json(svc.port, line) for svc, line in zip(ported, found)}


# The one HTTP check is fabops/host/httpcheck.py; the agentless path runs
# that same file on the host (docs/architecture.md, "The HTTP check"), so
# curl, with its own proxy, redirect and timeout rules, is not a second one.
@lru_cache(maxsize=None)
def _source() -> str:
    return Path(httpcheck.__file__).read_text(encoding="utf-8")


def http_check_input(checks) -> str:
    """What of HTTP checks may be secret (a URL may carry `user:pass@` or a
    token, a header an Authorization token, and the body) as the command's
    stdin: one JSON spec a line (httpcheck.spec), ASCII only, in order. So
    no argv `ps` shows on the host holds them (docs/security.md). One
    Check or several."""
    if not isinstance(checks, (list, tuple)):
        checks = [checks]
    return "".join(json.dumps(httpcheck.spec(c), sort_keys=True) + "\n" for c in checks)


# http_check_cmd's `feed` when the checks' input is the command's own stdin.
FROM_STDIN = raw("")


def http_check_cmd(feed: Cmd, count: int = 1) -> Cmd:
    """Run `count` HTTP checks on the host with its python3, in one process:
    their specs (http_check_input) come on its stdin (`feed=FROM_STDIN`,
    run with `stdin=http_check_input(...)`) or through `feed`, a pipe that
    gives them (the monitor's script, from its own stdin). It prints one
    result line a check, in order (parse_http_results). A host without
    python3 gets a `no answer` line a check that says so."""
    missing = httpcheck.result_line((None, "no answer (no python3 on the host for the HTTP check)", 0.0))
    return sh("if command -v python3 >/dev/null 2>&1; then {feed}python3 -I -S -c {source}; "
              "else i=0; while [ \"$i\" -lt {count} ]; do echo {missing}; i=$((i + 1)); done; fi",
              feed=feed, source=_source(), count=max(1, int(count)), missing=missing)


def http_check_source() -> str:
    """host/httpcheck.py's text: run as `python3 -c` source on a host, in
    the monitor's one python3 too (monitor._facts_source)."""
    return _source()


def parse_http_results(output: str, count: int) -> List[Tuple[Optional[int], str, float]]:
    """`count` results (status or None, detail, latency) from http_check_cmd's
    output; a missing line is `no answer`."""
    found = [line for line in output.splitlines() if line.strip()]
    return [httpcheck.parse_result(found[i] if i < len(found) else "") for i in range(count)]


class RemoteProbe:
    """Readiness checks run on the host over the connection: the ports and
    URLs are the host's own loopback, never reachable from the laptop."""

    def __init__(self, c):
        self.t = Target.of(c)

    def port_open(self, port: int) -> bool:
        return self.t.ok(port_listening_cmd(port))

    def port_owner(self, port: int, pid: Optional[int], systemd: bool, unit: str = "") -> listeners.PortOwner:
        """Whose the port's listener is, asked of the host's python3
        (host/listeners.py run as source, one command)."""
        return listeners.from_json(port, self.t.output(port_owner_cmd(port, pid, systemd, unit)).strip())

    def http(self, check):
        return self.http_all([check])[0]

    def http_all(self, checks: Iterable) -> List[Tuple[Optional[int], str, float]]:
        """Several checks in one command and one python3."""
        checks = list(checks)
        out = self.t.output(http_check_cmd(FROM_STDIN, len(checks)), stdin=http_check_input(checks))
        return parse_http_results(out, len(checks))
