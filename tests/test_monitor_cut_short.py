"""A monitor read that was cut short gives no facts (trial #2): a Ctrl-C
sent to the whole process group ends a local host's script half-way, and
its missing sections read as a stopped service, no check answer and no
deploy state. Unit tier: the script's output cut at each of its sections."""
import json
from pathlib import Path

import pytest
from invoke import Context, Result

from fabops import errors, monitor
from fabops.probe import MARK
from tests.test_monitor import CASES, host_of


class Cut(Context):
    """This machine's context whose every command printed `out`, then ended
    with `exited` (-2: killed by SIGINT)."""

    def __init__(self, out, exited):
        super().__init__()
        self.out, self.exited = out, exited

    def run(self, command, **kwargs):
        return Result(stdout=self.out, exited=self.exited, command=command)


def whole():
    data = json.loads(Path(CASES[-1]).read_text())
    return host_of(data["host"]), data["output"]


def test_the_recorded_output_ends_with_the_end_marker():
    host, out = whole()
    if MARK + "end" not in out.splitlines():
        out += f"\n{MARK}end\n"
    facts = monitor.gather(Cut(out, 0), host)
    assert facts["code"] in (errors.OK, errors.WARNING, errors.FAILED)


def test_a_cut_short_read_raises_instead_of_making_facts():
    host, out = whole()
    body = out.split(f"\n{MARK}end")[0]
    cuts = [i for i, line in enumerate(body.splitlines()) if line.startswith(MARK)]
    assert len(cuts) > 5
    for at in cuts:
        cut = "\n".join(body.splitlines()[:at]) + "\n"
        with pytest.raises(errors.UnreachableError, match=r"ended before its last section \(exit -2\)"):
            monitor.gather(Cut(cut, -2), host)


def test_ctrl_c_while_the_task_tree_loads_is_one_line():
    """Trial #2: a Ctrl-C 0.3 s after start landed in cli.py's `from .tasks
    import ns` and printed a KeyboardInterrupt traceback. The interrupt is
    raised there on purpose (an import hook), as the signal would."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Hook:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'fabops.tasks':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Hook())\n"
            "from fabops import cli\n"
            "cli.main(['fabops', 'monitor'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stdout, r.stderr) == (errors.INTERRUPTED, "", "fabops: interrupted\n")
