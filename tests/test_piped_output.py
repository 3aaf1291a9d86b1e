"""Piped output carries no trailing spaces (#24): rich pads table rows and
indented blocks to the full width, and a pipe, a diff or a CI log got every
line padded to 80 columns. Each command below runs as a pipe reads it (the
real `fabops` console script, stdout and stderr captured), at the two widths
the golden files use, on the local sandbox."""
import pytest

from tests.conftest import run_cli

WIDTHS = ("80", "200")


def trailing(text: str):
    return [line for line in text.splitlines() if line != line.rstrip()]


def too_long(text: str, width: int):
    """Lines wider than `width` that could have been broken at a space (#24:
    backup-env's sha256 line, health --fix --dry-run's verdict ran on past 80
    and a terminal cut them mid-word). A single word longer than the line is
    left whole, by design."""
    from rich.cells import cell_len

    return [line for line in text.splitlines() if cell_len(line) > width and " " in line.strip()]


@pytest.fixture
def deployed(sandbox):
    assert sandbox.result()[0] == 0
    return sandbox


def test_no_piped_line_ends_in_a_space(deployed):
    inv = str(deployed.inventory)
    commands = [
        ("hosts",), ("hosts", "--check"), ("history",), ("history", "--wide"), ("status",), ("ping",),
        ("monitor",), ("health",), ("health", "--fix", "--dry-run"), ("logs", "-n", "5"),
        ("logs", "--source", "update", "-n", "5"), ("deploy", "--dry-run"), ("backup-env",),
        ("backup-env", "--list"),
    ]
    seen, long = 0, []
    for width in WIDTHS:
        for args in commands:
            r = run_cli(*args, "-i", inv, env={"COLUMNS": width}, timeout=120)
            assert "Traceback" not in r.stderr, (args, r.stderr)
            bad = trailing(r.stdout) + trailing(r.stderr)
            assert not bad, f"{' '.join(args)} at {width} columns: lines end in spaces: {bad!r}"
            if args[0] != "logs":  # the log's own lines are data, shown whole (for grep)
                long += [(args, line) for line in too_long(r.stdout, int(width))]
            seen += len(r.stdout.splitlines())
    assert not long, f"lines past the width: {long!r}"
    assert seen > 50  # the commands printed something to check


def test_the_console_file_keeps_spaces_inside_a_line():
    """The stripping file drops spaces only where a line ends: spaces at the
    end of one write are held and written if the next write goes on."""
    import io

    from fabops.tasks.render import _NoTrailingSpaces

    out = io.StringIO()
    f = _NoTrailingSpaces(out)
    f.write("a  b   \nc ")
    f.write(" d   ")
    f.write("\n   \n")
    f.write("e   ")
    f.flush()
    assert out.getvalue() == "a  b\nc  d\n\ne"


def fake_crontab(tmp_path, table: str):
    """A `crontab` first on PATH that lists `table` (and installs nothing):
    cron and setup read it instead of this machine's own crontab."""
    bindir = tmp_path / "fake-bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "table").write_text(table)
    script = bindir / "crontab"
    script.write_text(f'#!/bin/sh\n[ "$1" = -l ] && cat {bindir / "table"}\nexit 0\n')
    script.chmod(0o755)
    import os

    return {"PATH": f"{bindir}:{os.environ['PATH']}"}


def test_diffs_fit_the_width_in_a_pipe(sandbox, tmp_path):
    """cron --install --dry-run and setup --check show their diffs as one
    renderer does (trial #9: cron piped 238-column lines; setup broke words
    and left a space at the break): wrapped at spaces to the width, `↳`
    continuations, no trailing space, every word whole."""
    env = fake_crontab(tmp_path, "0 3 * * * /usr/local/bin/nightly-report --to ops@example.org\n")
    inv = str(sandbox.inventory)
    for width in WIDTHS:
        for args in (("cron", "--install", "--dry-run"), ("setup", "--check")):
            r = run_cli(*args, "-i", inv, env={**env, "COLUMNS": width}, timeout=120)
            assert "Traceback" not in r.stderr, (args, r.stderr)
            assert "+# >>> fabops app >>>" in r.stdout, (args, r.stdout, r.stderr)
            assert not trailing(r.stdout), f"{' '.join(args)} at {width}: {trailing(r.stdout)!r}"
            assert not too_long(r.stdout, int(width)), f"{' '.join(args)} at {width}: {too_long(r.stdout, int(width))!r}"
            folded = [ln for ln in r.stdout.splitlines() if "↳" in ln]
            assert folded or width != "80", (args, r.stdout)
            # every word of the job lines is whole on one line
            assert all(ln.startswith(" " * 11 + "↳ ") for ln in folded), folded
            words = " ".join(ln.split("↳ ", 1)[-1] if "↳" in ln else ln for ln in r.stdout.splitlines()).split()
            assert "local-update" in words and "--trigger" in words and "2>&1" in words, words


def test_a_terminal_gets_no_trailing_spaces_either(monkeypatch):
    """#24: on a terminal, rich's tables came padded with spaces to the
    width (only pipes were spared). The real `fabops hosts` on a
    pseudo-terminal at 80 columns: in colour, no line ending in a space
    (style codes aside), and otherwise the lines a pipe gets (the golden
    file)."""
    import sys

    from tests.conftest import ROOT
    from tests.test_golden import GOLDEN, SGR
    from tests.test_monitor_pty import Session

    monkeypatch.chdir(ROOT)  # the golden file names the inventory as test_golden.test_hosts gives it
    session = Session([sys.executable, "-m", "fabops.cli", "hosts", "-i", "tests/fixtures/golden/hosts.yml"],
                      background=False)
    try:
        code = session.wait(60)
        session.read(lambda out: False, 10)  # what is left in the terminal (it returns when the child has closed it)
    finally:
        session.close()
    text = session.out.decode("utf-8", "replace").replace("\r\n", "\n")
    assert code == 0 and SGR.search(text), text
    plain = SGR.sub("", text)
    assert not trailing(plain), trailing(plain)
    assert plain == (GOLDEN / "hosts-80.txt").read_text(), plain
