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
