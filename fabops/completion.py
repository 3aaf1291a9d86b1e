"""Shell completion: Invoke's task and flag completion, plus host and group
names from the inventory after `-H` (docs/architecture.md, "Command line").

Invoke's own scripts pass the command line unquoted (`${COMP_WORDS[*]}`), so
an empty current word vanishes and `-H web1 <TAB>` cannot be told from
`-H web1<TAB>`. The scripts below pass every word quoted, up to and including
the one being completed; Invoke joins them with spaces, so a remainder that
ends in a space means "the current word is empty". One script serves
`fabops`, `inv` and `invoke`: each completes through its own binary.
"""
from __future__ import annotations

import shlex
from typing import List, Optional, Tuple

from .shell import q

HOST_FLAGS = ("-H", "--hosts")
INVENTORY_FLAGS = ("-i", "--inventory")

BASH = r"""# fabops tab completion for bash: source <(fabops --print-completion-script bash)
_fabops_complete() {
    local IFS=$'\n'
    # Every word up to the cursor, quoted, so that an empty current word
    # reaches fabops as an empty argument.
    # bash splits `--hosts=web` at "=": right after it the current word is
    # "=" itself, and the candidates are matched against nothing yet
    local cur="$2"
    [ "$cur" = "=" ] && cur=""
    COMPREPLY=( $(compgen -W "$("$1" --complete -- "${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null)" -- "$cur") )
}
complete -F _fabops_complete -o default fabops inv invoke
"""

ZSH = r"""# fabops tab completion for zsh: source <(fabops --print-completion-script zsh)
# (after compinit; oh-my-zsh and prezto run it for you)
_fabops_complete() {
    local -a candidates
    candidates=( ${(f)"$(${words[1]} --complete -- "${(@)words[1,CURRENT]}" 2>/dev/null)"} )
    if (( ${#candidates} )); then
        compadd -- $candidates
    else
        _files
    fi
}
compdef _fabops_complete fabops inv invoke
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH}


def complete(program) -> None:
    """Print host and group names (then exit) when the word being completed
    is a `-H` value; otherwise leave the remainder normalised for Invoke's
    own task and flag completion."""
    from invoke import Exit

    before, current = split(program.core.remainder, program.binary_names)
    hosts = host_candidates(before, current)
    if hosts is not None:
        for name in hosts:
            print(name)
        raise Exit
    # Invoke strips its own binary name only when it is given bare; our
    # scripts may pass a path (.venv/bin/inv). Hand it the words alone.
    program.core.remainder = " ".join(q(w) for w in before + [current]) if current else (
        " ".join(q(w) for w in before) + " ")


def split(remainder: str, names: List[str]) -> Tuple[List[str], str]:
    """The words before the cursor and the (possibly empty) current word.

    `remainder` is what followed `--complete --`, joined by Invoke with
    single spaces; a trailing space means the current word is empty."""
    try:
        tokens = shlex.split(remainder)
    except ValueError:  # an open quote: complete the rest as one word
        tokens = remainder.split(" ")
    if tokens and tokens[0].rsplit("/", 1)[-1] in names:
        tokens = tokens[1:]
    if remainder.endswith(" ") or not tokens:
        return tokens, ""
    return tokens[:-1], tokens[-1]


def host_candidates(before: List[str], current: str) -> Optional[List[str]]:
    """Host and group names when the word being completed is a `-H` value,
    else None (the caller falls back to Invoke's completion).

    `-H web1,d<TAB>` completes the last comma-separated entry and keeps the
    rest."""
    if current.startswith("--hosts="):  # zsh: one word
        flag_prefix, current = "--hosts=", current[len("--hosts="):]
    elif before and before[-1] in HOST_FLAGS:
        flag_prefix = ""
    elif before[-2:] == ["--hosts", "="]:  # bash splits words at "=" (COMP_WORDBREAKS)
        flag_prefix = ""
    elif current == "=" and before and before[-1] == "--hosts":  # bash, the cursor right after "="
        flag_prefix, current = "", ""
    else:
        return None
    names = inventory_names(inventory_flag(before))
    head, _, _ = current.rpartition(",")
    prefix = flag_prefix + (head + "," if head else "")
    taken = set(head.split(",")) if head else set()
    names = [n for n in names if n not in taken]
    return [prefix + n for n in names]


def inventory_names(path: Optional[str]) -> List[str]:
    """Host and group names as the file spells them, without validating the
    rest: a user in the middle of editing hosts.yml still gets names. A file
    that cannot be read or parsed completes nothing, never a traceback in the
    middle of the user's command line."""
    import yaml

    from .inventory import find_inventory

    try:
        with open(find_inventory(path), encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    if not isinstance(data, dict):
        return []
    names: List[str] = []
    for section in ("hosts", "groups"):
        table = data.get(section)
        if isinstance(table, dict):
            names.extend(str(n) for n in table if str(n) not in names)
    return names + ["all"]


def inventory_flag(words: List[str]) -> Optional[str]:
    for i, word in enumerate(words):
        if word in INVENTORY_FLAGS and i + 1 < len(words):
            return words[i + 1]
        for flag in INVENTORY_FLAGS:
            if word.startswith(flag + "="):
                return word[len(flag) + 1:]
    return None
