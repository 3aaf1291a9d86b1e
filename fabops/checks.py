"""The port and HTTP checks a laptop runs on a host over the connection
(agentless: POSIX sh, and curl or the host's python3). The ports and URLs
are the host's own loopback, never reachable from the laptop."""
from __future__ import annotations

from typing import Optional

from .shell import Cmd, raw, sh
from .target import Target


def port_listening_cmd(port: int) -> Cmd:
    """Exit 0 when something listens on TCP `port` (any address). Uses `ss`
    when present, else /proc/net/tcp{,6} (state 0A is LISTEN)."""
    port = int(port)
    return sh("if command -v ss >/dev/null 2>&1; then ss -Hltn {sport} | grep -q .; "
              "else awk {prog} /proc/net/tcp /proc/net/tcp6 2>/dev/null; fi",
              sport=f"sport = :{port}", prog=f'$2 ~ /:{port:04X}$/ && $4 == "0A" {{f=1}} END {{exit !f}}')


# The python3 fallback reads the same curl config lines from stdin (only
# `header` and `data-raw`, in _curl_quoted's escapes) when argv[4] is "1".
_PY_HTTP = r"""
import re, sys, time, urllib.request, urllib.error
method, timeout = sys.argv[1], float(sys.argv[2])
url, headers, body = "", {}, None
for line in sys.stdin.buffer.read().decode("utf-8").split("\n"):
    key, _, value = line.partition(" = ")
    value = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1)), value[1:-1])
    if key == "url":
        url = value
    elif key == "header":
        name, _, v = value.partition(": ")
        headers[name] = v
    elif key == "data-raw":
        body = value
data = body.encode("utf-8") if body is not None else None
req = urllib.request.Request(url, data=data, method=method, headers=headers)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
t = time.time()
try:
    code = opener.open(req, timeout=timeout).status
except urllib.error.HTTPError as e:
    code = e.code
except Exception:
    code = 0
print("%d %.4f" % (code, time.time() - t))
"""


def _curl_quoted(value: str) -> str:
    r"""A value as a quoted string of curl's config file: one line, whatever
    it holds (curl reads \\ \" \n \r \t back). NUL cannot be carried."""
    if "\x00" in value:
        raise ValueError("an HTTP check's header or body cannot hold a NUL character")
    for char, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        value = value.replace(char, escaped)
    return f'"{value}"'


def http_check_input(check) -> str:
    """What of an HTTP check may be secret (its URL, which may carry
    `user:pass@` or a token, its headers, an Authorization token among
    them, and its body) as curl config lines: `url`, one `header` a header
    and a `data-raw` line (a body starting with @ is sent as it is, never
    read as a file name). The check's command reads them from stdin, so no
    argv `ps` shows on the host holds them (docs/security.md)."""
    import json as jsonlib

    headers = dict(check.headers)
    body = None
    if check.json is not None:
        body = jsonlib.dumps(check.json)
        headers.setdefault("Content-Type", "application/json")
    elif check.body:
        body = check.body
    elif check.method in ("POST", "PUT"):
        body = ""
    config = [f"url = {_curl_quoted(check.url)}"]
    config += [f"header = {_curl_quoted(f'{k}: {v}')}" for k, v in headers.items()]
    if body is not None:
        config.append(f"data-raw = {_curl_quoted(body)}")
    return "".join(line + "\n" for line in config)


# http_check_cmd's `feed` when the check's input is the command's own stdin.
FROM_STDIN = raw("")


def http_check_cmd(check, feed: Optional[Cmd] = None) -> Cmd:
    """Run an HTTP check on the host: curl, else the host's python3. The
    method and timeout are in the command; the URL, headers and body
    (http_check_input) come on its stdin (`feed=FROM_STDIN`, run with
    `stdin=http_check_input(check)`), or through `feed`, a pipe that gives
    them (the monitor's script slices them from its own stdin). Without a
    `feed` it is refused at once: run without its input, the command would
    wait for it forever."""
    if feed is None:
        raise TypeError("an HTTP check reads its URL, headers and body from stdin: pass feed=FROM_STDIN and run "
                        "the command with stdin=http_check_input(check)")
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}\\n", "--noproxy", "*",
            "--max-time", f"{check.timeout:g}", "-X", check.method, "--config", "-"]
    py = ["python3", "-c", _PY_HTTP, check.method, f"{check.timeout:g}"]
    return sh("if command -v curl >/dev/null 2>&1; then {feed}{curl}; else {feed}{py}; fi", feed=feed, curl=curl, py=py)


def parse_http_result(output: str):
    parts = output.split()
    try:
        code = int(parts[0])
        latency = float(parts[1])
    except (IndexError, ValueError):
        return None, "no answer", 0.0
    if code == 0:
        return None, "no answer", latency
    return code, f"HTTP {code}", latency


class RemoteProbe:
    """Readiness checks run on the host over the connection: the ports and
    URLs are the host's own loopback, never reachable from the laptop."""

    def __init__(self, c):
        self.t = Target.of(c)

    def port_open(self, port: int) -> bool:
        return self.t.ok(port_listening_cmd(port))

    def http(self, check):
        out = self.t.output(http_check_cmd(check, FROM_STDIN), stdin=http_check_input(check))
        return parse_http_result(out)
