"""Run a command fabops built in a real /bin/sh whose PATH holds recording
stubs: what a builder means is what the shell does with it (the argv each
program receives, the files it touches), not the text it happens to be."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

# A stub: records its argv as one JSON line, then runs the given shell body
# (print a fixture, exit with a code).
_STUB = """#!/bin/sh
python3 - "$0" "$@" <<'PY' >> {log}
import json, os, sys
print(json.dumps([os.path.basename(sys.argv[1])] + sys.argv[2:]))
PY
{body}
"""


def run_with_stubs(cmd: str, base: Path, stubs: Dict[str, str], home: Path = None) -> Tuple[subprocess.CompletedProcess,
                                                                                           List[List[str]]]:
    """Run `cmd` under /bin/sh with PATH = stubs (name -> shell body) + the
    system's, HOME = `home` (or base); returns the result and every stub
    call's argv, in order."""
    bindir = base / "stubbin"
    bindir.mkdir(parents=True, exist_ok=True)
    log = base / "stub-calls.jsonl"
    log.write_text("")
    for name, body in stubs.items():
        stub = bindir / name
        stub.write_text(_STUB.format(log=log, body=body))
        stub.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(home or base), "LC_ALL": "C"}
    r = subprocess.run(["/bin/sh", "-c", cmd], cwd=base, capture_output=True, text=True, timeout=30, env=env,
                       stdin=subprocess.DEVNULL)
    calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return r, calls
