"""A stand-in for the voice-meeting bot: a tiny HTTP service.

- GET  /health                      -> 200 {"status": "ok", "version": ...}
- POST /webhook/meeting-completed   -> 200 {"received": true}

Behaviour is driven by files in the commit, so tests and the demo can push a
good, a crash-on-boot or an unhealthy version:
- BEHAVIOUR: `ok` (default), `crash` (exit 1 at start-up), `unhealthy`
  (starts, but /health answers 500), `error` (every request answers 500) or
  `crash-after N` (answers its checks, then exits 3 after N seconds) or
  `sick-after N` (answers its checks, then every request answers 500 after
  N seconds, while the process stays up);
- VERSION: shown by /health.
The port comes from $PORT, else PORT= in .env, else 3013. It refuses to start
unless its dependencies are installed (vendor/installed.txt matches
requirements.txt), as a Node app without node_modules would.
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name, default=""):
    try:
        with open(os.path.join(HERE, name)) as fh:
            return fh.read().strip()
    except OSError:
        return default


def dotenv():
    values = {}
    for line in read(".env").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


BEHAVIOUR = read("BEHAVIOUR", "ok")
VERSION = read("VERSION", "0")
PORT = int(os.environ.get("PORT") or dotenv().get("PORT") or 3013)
STARTED = time.monotonic()


def failing() -> bool:
    if BEHAVIOUR == "error":
        return True
    if BEHAVIOUR.startswith("sick-after "):
        return time.monotonic() - STARTED > float(BEHAVIOUR.split()[1])
    return False


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if failing():
            self._send(500, {"error": "internal", "version": VERSION})
        elif self.path == "/health":
            if BEHAVIOUR == "unhealthy":
                self._send(500, {"status": "unhealthy", "version": VERSION})
            else:
                self._send(200, {"status": "ok", "version": VERSION})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if failing():
            self._send(500, {"error": "internal", "version": VERSION})
        elif self.path == "/webhook/meeting-completed":
            self._send(200, {"received": True, "version": VERSION})
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


def main():
    if BEHAVIOUR == "crash":
        print("sample-app: crashing on boot (BEHAVIOUR=crash)", file=sys.stderr)
        sys.exit(1)
    if read("vendor/installed.txt", None) != read("requirements.txt", ""):
        print("sample-app: dependencies not installed (run install-deps.sh)", file=sys.stderr)
        sys.exit(1)
    server = HTTPServer(("127.0.0.1", PORT), Handler)
    print(f"sample-app {VERSION} listening on {PORT}", flush=True)
    if BEHAVIOUR.startswith("crash-after "):
        import threading

        def die():
            print(f"sample-app: crashing now ({BEHAVIOUR})", file=sys.stderr, flush=True)
            os._exit(3)

        threading.Timer(float(BEHAVIOUR.split()[1]), die).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
