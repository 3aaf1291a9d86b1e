"""The one HTTP check (docs/architecture.md, "The HTTP check").

The pipeline's readiness gate and watch call `run` on the host; the
agentless tasks (monitor, health, restart over SSH) send this file's source
to the host's python3 (`python3 -I -S -c SOURCE`, fabops/checks.py) with the
checks on stdin, one JSON spec a line, and read one result line each. So a
check means the same thing wherever it runs:

- no proxy, ever: a check targets the host's own services, and an
  `http_proxy` in the environment would send it elsewhere (the request is
  spoken over a socket, which reads no proxy variable; `-I` makes python3
  ignore PYTHON* variables too);
- one deadline of `timeout` seconds for connect, TLS, send and the status
  line together;
- redirects are not followed: a 3xx is the answer (a redirect may lead off
  the host), so `expect: 302` can check one;
- the status is that of the first status line; latency is the time from
  the start to that line;
- `user:pass@` in the URL is sent as Basic authorization, unless the check
  has its own Authorization header;
- https verifies the certificate against the system's CAs.

No import of fabops here, and Python 3.6 syntax: the source runs alone on a
host's python3, fabops installed or not. A plain http:// check imports
neither urllib.request nor ssl, nor urllib.parse nor the idna codec for
a plain URL (_plain, _name): the cron path polls it every 200 ms.
"""
import socket
import time

_SENT = ("url", "method", "headers", "body", "timeout")


def spec(check) -> dict:
    """What is sent for an inventory Check: its URL, method, headers (with a
    Content-Type for `json`), body and timeout. A JSON-able dict: it is the
    agentless path's stdin, which may hold secrets (docs/security.md)."""
    headers = dict(check.headers)
    body = check.body
    if check.json is not None:
        import json

        body = json.dumps(check.json)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    return {"url": check.url, "method": check.method, "headers": headers, "body": body,
            "timeout": float(check.timeout)}


def run(check):
    """(status or None, detail, latency seconds) of one check. Never raises."""
    return request(spec(check))


def request(s: dict):
    """`run` for a spec (the dict `spec` returns)."""
    started = time.monotonic()
    try:
        status = _exchange(s, started + float(s.get("timeout") or 5.0))
    except socket.timeout:
        return None, "no answer (timed out after %gs)" % float(s.get("timeout") or 5.0), time.monotonic() - started
    except (OSError, ValueError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
        return None, "no answer (%s)" % " ".join(reason.split()), time.monotonic() - started
    except Exception as exc:  # noqa: BLE001 - a malformed spec on the agentless path's stdin: no answer, no crash
        return None, "no answer (%s: %s)" % (exc.__class__.__name__, exc), time.monotonic() - started
    latency = time.monotonic() - started
    if status is None:
        return None, "no answer (not HTTP)", latency
    return status, "HTTP %d" % status, latency


def _exchange(s: dict, deadline: float):
    """The status on the first status line that `s`'s request gets (None:
    the answer is not HTTP). Raises when there is no answer (`request`
    says which)."""
    parts = _url(s["url"])
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    answer = _first_line(parts.hostname, port, tls, _message(s, parts, port), deadline)
    words = answer.split(b"\r\n", 1)[0].split()
    if len(words) >= 2 and words[0].startswith(b"HTTP/") and words[1].isdigit() and len(words[1]) == 3:
        return int(words[1])
    return None


def _url(url: str):
    """The check's URL, split: http or https, with a host."""
    # hosts.yml's validator refuses these too; here they would split the
    # request line or a header into two.
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("the URL holds a space or a control character")
    parts = _plain(url)
    if parts is None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("unsupported URL")
    return parts


# A plain URL's host: a lowercase name or an IPv4 address (_plain).
_PLAIN_HOST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


class _Plain:
    """What urlsplit gives for a plain URL, the attributes this file reads."""
    username = password = None

    def __init__(self, scheme, hostname, port, path, query):
        self.scheme, self.hostname, self.port, self.path, self.query = scheme, hostname, port, path, query


def _plain(url: str):
    """`url` split as urlsplit splits it, when it is plain
    (`http://127.0.0.1:3013/health?x`: a lowercase scheme, no user part, a
    host of _PLAIN_HOST, a port of 1 to 5 digits up to 65535); None for
    any other, which urlsplit splits. urllib.parse, with the ipaddress it
    imports, was 3-4 ms of every cron poll (docs/benchmarks.md), whose
    check URL is nearly always plain. The split is urlsplit's: the
    authority ends at the first / ? or #, the fragment goes first, then
    the query."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        return None
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    end = min(ends) if ends else len(rest)
    host, colon, port = rest[:end].partition(":")
    if not host or not _PLAIN_HOST.issuperset(host):
        return None
    if colon and not (0 < len(port) <= 5 and all(c in "0123456789" for c in port) and int(port) <= 65535):
        return None
    path, _, query = rest[end:].partition("#")[0].partition("?")
    return _Plain(scheme, host, int(port) if colon else None, path, query)


def _message(s: dict, parts, port: int) -> bytes:
    """The request's bytes: request line, headers, body."""
    method = s.get("method") or "GET"
    body = s.get("body")
    if body is None and method in ("POST", "PUT"):
        body = ""
    data = b"" if body is None else body.encode("utf-8")
    headers = _headers(s, parts, port, None if body is None else len(data))
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in headers.items())
    return (head + "\r\n").encode("utf-8") + data


def _headers(s: dict, parts, port: int, length) -> dict:
    """Ours (Host, User-Agent, Accept, Connection; Basic authorization for
    `user:pass@`; Content-Length when there is a body of `length` bytes),
    then the check's own, which win whatever their case."""
    host = parts.hostname
    named = "[%s]" % host if ":" in host else host
    headers = {"Host": named if port == (443 if parts.scheme == "https" else 80) else "%s:%d" % (named, port),
               "User-Agent": "fabops-check", "Accept": "*/*", "Connection": "close"}
    if parts.username is not None:  # not a plain URL (_plain): urllib.parse is loaded already
        import base64
        from urllib.parse import unquote

        pair = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    if length is not None:
        headers["Content-Length"] = str(length)
    for name, value in (s.get("headers") or {}).items():
        if any(c in "\r\n\x00" for c in name + value):
            raise ValueError("a header holds a line break or a NUL")
        for ours in [k for k in headers if k.lower() == name.lower()]:
            del headers[ours]
        headers[name] = value
    return headers


def _first_line(host: str, port: int, tls: bool, message: bytes, deadline: float) -> bytes:
    """Connect (TLS verified against the system's CAs for https), send
    `message` and read until the first line ends, all before `deadline`."""

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        return remaining

    sock = socket.create_connection((_name(host), port), timeout=left())
    try:
        if tls:
            import ssl

            sock.settimeout(left())
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        sock.settimeout(left())
        sock.sendall(message)
        answer = b""
        while b"\r\n" not in answer and len(answer) < 8192:
            sock.settimeout(left())
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    finally:
        sock.close()
    return answer


def _name(host: str):
    """`host` as getaddrinfo gets it: the ASCII bytes the idna codec would
    make of it (encodings/idna.py: an ASCII name is itself when each label
    but an empty last one has 1 to 63 characters), so the codec is not
    imported (a millisecond of every cron poll); any other name as text,
    for the codec to encode or refuse as before."""
    try:
        raw = host.encode("ascii")
    except UnicodeEncodeError:
        return host
    labels = raw.split(b".")
    if all(0 < len(label) < 64 for label in labels[:-1]) and len(labels[-1]) < 64:
        return raw
    return host


def shown(url: str) -> str:
    """The URL as fabops prints it: `user:pass@` (or a token as the user
    part) replaced by `***@`. Messages reach history, logs, notifications
    and the CI summary; the URL may carry a secret (docs/security.md)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    return "%s://***@%s%s%s" % (scheme, authority.rpartition("@")[2], slash, path)


def result_line(result) -> str:
    """One check's result as the agentless path prints it: status (0 for
    none), latency, detail."""
    status, detail, latency = result
    return "%d %.6f %s" % (status or 0, latency, detail)


def parse_result(line: str):
    """(status or None, detail, latency) from a `result_line`; latency is
    None when the line is missing or unreadable (the check did not run)."""
    words = (line or "").split(None, 2)
    try:
        status, latency = int(words[0]), float(words[1])
    except (IndexError, ValueError):
        return None, "no answer", None
    detail = words[2] if len(words) > 2 else ("HTTP %d" % status if status else "no answer")
    return (status or None), detail, latency


def main() -> None:
    """The agentless path: one JSON spec a line on stdin, one result line
    each on stdout, in order."""
    import json
    import sys

    for line in sys.stdin.buffer.read().decode("utf-8", "replace").splitlines():
        if line.strip():
            try:
                s = json.loads(line)
                s = {k: s.get(k) for k in _SENT}
            except (ValueError, AttributeError):  # not JSON, or not an object: this check only
                print(result_line((None, "no answer (unreadable check)", 0.0)), flush=True)
                continue
            print(result_line(request(s)), flush=True)


if __name__ == "__main__":
    main()
