"""What the maintenance tasks share: the checked runner, app paths, time
stamps, and the history record a reset writes."""
from __future__ import annotations

import json
import posixpath
import time

from ..errors import CommandFailed
from ..inventory import Host
from ..shell import Cmd, as_cmd, path, quote_path, sh



def run(c, cmd: Cmd, what: str, host: Host, warn: bool = False):
    result = c.run(as_cmd(cmd), hide=True, warn=True, in_stream=False)
    if not result.ok and not warn:
        raise CommandFailed.from_result(what, result, host=host.name)
    return result


def app_file(host: Host, rel: str) -> Cmd:
    return quote_path(posixpath.join(host.app.path.rstrip("/"), rel))


def stamp(fine: bool = False) -> str:
    """A sortable local timestamp; `fine` adds microseconds so two backups in
    the same second never overwrite each other."""
    if fine:
        import datetime

        return datetime.datetime.now().strftime("%Y%m%dT%H%M%S-%f")
    return time.strftime("%Y%m%dT%H%M%S")


# A record in the pipeline's own files, written with the host's python3:
# one history line (O_APPEND) and a merge into state.json (temp, fsync, rename).
_RECORD = r"""
import json, os, sys, tempfile
home, record, updates = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
os.makedirs(home, mode=0o700, exist_ok=True)
fd = os.open(os.path.join(home, "history.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode()); os.fsync(fd); os.close(fd)
path = os.path.join(home, "state.json")
try:
    state = json.load(open(path))
except Exception:
    state = {}
state.update(updates)
fd, tmp = tempfile.mkstemp(dir=home)
with os.fdopen(fd, "w") as fh:
    json.dump(state, fh, indent=2, sort_keys=True); fh.flush(); os.fsync(fh.fileno())
os.chmod(tmp, 0o600); os.replace(tmp, path)
"""


def record_run(c, host: Host, record: dict, state_updates: dict) -> None:
    run(c, sh("python3 -c {script} {home} {record} {updates}", script=_RECORD, home=path(host.at_home()),
              record=json.dumps(record, default=str), updates=json.dumps(state_updates)),
        "recording the run", host)
