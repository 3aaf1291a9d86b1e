"""A resumed follow's notice waits for the remote tail (fabops/logs.py;
docs/architecture.md, "Following logs"): pure logic of the marker line."""
from fabops.logs import RESUMED, _Lines


def test_the_marker_line_is_not_shown_and_calls_the_notice_once():
    shown, notices = [], []
    out = _Lines("h1", lambda host, line: shown.append((host, line)))
    out.marker = RESUMED
    out.on_marker = lambda: notices.append("reconnected")
    out.feed(f"{RESUMED}\r\nfirst\r\n")
    out.feed(f"{RESUMED}\r\nsec")  # a log line that happens to read the same is shown
    out.feed("ond\r\n")
    assert notices == ["reconnected"]
    assert shown == [("h1", "first"), ("h1", RESUMED), ("h1", "second")]


def test_without_a_marker_every_line_is_shown():
    shown = []
    out = _Lines("h1", lambda host, line: shown.append(line))
    out.feed(f"{RESUMED}\npartial")
    out.close()
    assert shown == [RESUMED, "partial"]
