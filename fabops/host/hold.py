"""The restore hold (HostPaths.restore_hold) read one way everywhere
(docs/backups.md, "The hold"): an in-place restore writes it before it
puts the first item back and removes it once every item is back; while it
is there no service starts and no backup copies.

One rule, in Python (read_hold: backup runs, restores, the launcher's own
`--hold`) and in sh (hold_check: the units' launcher script, the process
manager's start and fabops' `systemctl start`, none of which may depend on
the version of fabops in the host's venv):

- it stands when the path exists at all, a dangling symbolic link too
  (`[ -e ] || [ -L ]`, os.path.lexists): a hold is never ignored because it
  cannot be followed or read;
- its words are its first line, at most 4000 bytes of it, keeping only
  printable ASCII (bytes 32-126: no terminal escape reaches the journal,
  the history, the update log or a chat notification), runs of spaces
  made one, trimmed; none left (or unreadable): `a restore's hold PATH is
  there`."""
import os
import re
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # the builder imports shell when it runs: the launcher's start needs none of it
    from ..shell import Cmd

LIMIT = 4000  # bytes of the first line read
EX_TEMPFAIL = 75  # a held start's exit: start again once the restore is taken over


def generic(hold: str) -> str:
    """The words of a hold that says nothing readable."""
    return f"a restore's hold {hold} is there"


def read_hold(hold: str) -> Optional[str]:
    """The hold's words (the module's rule), or None when there is none."""
    if not os.path.lexists(hold):
        return None
    try:
        with open(hold, "rb") as fh:
            raw = fh.read(LIMIT + 1).split(b"\n", 1)[0][:LIMIT]
    except OSError:  # unreadable or dangling: it still holds
        raw = b""
    text = re.sub(" +", " ", bytes(b for b in raw if 32 <= b <= 126).decode("ascii")).strip(" ")
    return text or generic(hold)


def refusal(words: str, hold: str) -> str:
    """The one line a held start says (stderr: the journal, a service's log)."""
    return f"fabops: not starting: {words} (the hold {hold} goes when the restore is finished)"


def hold_check(hold: str, log: Optional[str] = None) -> "Cmd":
    """Shell code: when the hold at path `hold` stands, its refusal on
    stderr (and appended to the file `log`, when given) and exit 75; else
    nothing. sh alone (head, tr, sed): no Python, no venv."""
    from ..shell import path, sh

    tee = sh(" | tee -a {log} >&2", log=path(log)) if log is not None else sh(" >&2")
    return sh(
        "if [ -e {hold} ] || [ -L {hold} ]; then "
        "fabops_w=$(head -n 1 {hold} 2>/dev/null | head -c {limit} | tr -cd ' -~' | tr -s ' ' | sed 's/^ //; s/ $//'); "
        "[ -n \"$fabops_w\" ] || fabops_w=\"a restore's hold \"{hold}\" is there\"; "
        "printf 'fabops: not starting: %s (the hold %s goes when the restore is finished)\\n' \"$fabops_w\" {hold}"
        "{tee}; exit {code}; fi\n", hold=path(hold), limit=LIMIT, tee=tee, code=EX_TEMPFAIL)
