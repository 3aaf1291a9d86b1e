"""Text from a host made safe to show on a terminal (or in a chat message).

Commit subjects and authors, service output, a dependency rule's last line,
lock holders and error messages that quote a host are written by whoever
can push to the app or run code on the host. Printed as they are, their
escape sequences act on the reader's terminal: `ESC[2J` clears it, OSC 8
makes a link that says one thing and opens another, OSC 52 writes the
clipboard, a bare CR overwrites what came before and U+202E reverses the
text after it. `printable` turns such text into plain characters:

- escape sequences (CSI, OSC, DCS/SOS/PM/APC, and every other ESC
  sequence, in their 7-bit and C1 forms) are removed whole, so service
  output in colour loses its colour and keeps its words;
- every other control character (C0, DEL, C1), and the invisible line and
  paragraph separators, zero widths and joiners, becomes U+FFFD, which shows
  that something was there; TAB and LF are kept when `lines` is true (the
  text is meant to span lines; a CR LF becomes LF) and become spaces when
  it is false (one table cell, one line);
- bidirectional formatting characters (U+061C, U+200E, U+200F,
  U+202A-U+202E, U+2066-U+2069) are removed: they have no glyph, only the
  power to reorder what the reader sees.

The data itself is not changed where it is kept (state, history, --json):
only what is shown. Rich markup is a second, separate escape, done by the
task layer where it prints through markup (`fabops.tasks.render.markup`).
Standard library only: the host side (notify) uses it too.
"""
from __future__ import annotations

import re

__all__ = ["printable", "STDERR_FIT"]

# How the library's own `fabops: …` lines on stderr (maintenance/backup's
# notes while a restore runs) are fitted: as they are, until the task
# layer, which every command that prints them imports, puts its rule here
# (tasks/_base.for_stderr: wrapped at spaces on a terminal, one whole line
# in a pipe, never padded; docs/architecture.md, "Command line"). The
# library imports no printer (tests/test_layers.py), so it is handed in.
STDERR_FIT = [lambda text: text]

_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI: parameters, intermediates, final byte
    # OSC, DCS, SOS, PM, APC: a string up to BEL or ST (never past a line's end)
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"  # any other ESC sequence: charset, keypad, reset
)
# Controls, and the invisible characters that split or join what the
# reader sees (line and paragraph separators, zero widths, the byte-order
# mark, word joiner, invisible operators, deprecated format characters)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200b\ufeff\u2060-\u2064\u206a-\u206f]")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"\r\n|[\t\n]")


def printable(text: object, lines: bool = False) -> str:
    """`text` (str() of anything) with its escape sequences, control and
    bidi characters made harmless, as the module docstring says; `lines`
    keeps TAB and LF."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():  # the common case, and fast: no control, no format character
        return text
    text = _SEQUENCE.sub("", text)
    text = text.replace("\r\n", "\n") if lines else _LINE_BREAKS.sub(" ", text)
    return _CONTROL.sub("\ufffd", _BIDI.sub("", text))
