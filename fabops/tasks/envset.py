"""env-set, env-unset, env-push: secrets without an editor
(docs/maintenance.md, "Secrets without an editor"). The change itself is
maintenance/envset.py; here the value is read (a prompt without echo, or
stdin: never argv) and the results are printed, key names only."""
from __future__ import annotations

import sys

from invoke import Collection

from .. import errors
from ._base import fabops_task, finish, print_envelope, print_text

_HELP = {
    "actor": "Who changes it, for the lock message.",
}
_FORCE = {"force": "Remove a variable the deployed checkout's .env.example needs anyway (refused otherwise: "
                   "the next deploy would refuse the host until it is set again)."}


def _help_asked(word, task: str, what: str) -> bool:
    """`env-set --help`: Invoke hands a flag after the task to its
    positional argument (as agent's): the usage, not a refusal of `--help`."""
    if word not in ("-h", "--help"):
        return False
    from ..shell import program

    print_text(f"usage: {program()} {task} {what} [-H HOSTS] [--dry-run] [--json]; "
               f"every option: `{program()} --help {task}` (docs/maintenance.md)")
    return True


def hidden(prompt: str) -> str:
    """One line typed on stdin's terminal with its echo off (the prompt on
    stderr). Not getpass: it reads the process' controlling terminal,
    which a run in the agent has none of (its stdin is the client's
    terminal, docs/architecture.md "The agent"), and getpass would then
    read with the echo on."""
    import termios

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~termios.ECHO
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
        sys.stderr.write(prompt)  # after the echo is off: a value typed at once is not shown
        sys.stderr.flush()
        line = sys.stdin.readline()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
        sys.stderr.write("\n")  # the Enter typed was not echoed either
        sys.stderr.flush()
    if not line:
        raise EOFError
    return line[:-1] if line.endswith("\n") else line


def read_value(key: str, allow_empty: bool = False) -> str:
    """The value: typed at a prompt that does not echo when stdin is a
    terminal, else stdin's text with one trailing newline stripped. Never a
    flag: argv is what `ps` and the shell's history show (docs/security.md).
    An empty one only with `allow_empty` (maintenance/envset.check_not_empty)."""
    from ..maintenance.envset import check_not_empty, check_value, one_value

    if sys.stdin.isatty():
        try:
            value = hidden(f"{key} (not echoed): ")
        except EOFError:
            raise errors.UsageError("cancelled: nothing was changed") from None
    else:
        value = one_value(sys.stdin.read())
    return check_not_empty(key, check_value(key, value), allow_empty)


def _run(change, trigger: str, hosts, dry_run: bool, actor, json: bool, inventory, accept_new, connect_timeout,
         force: bool = False):
    """Each host's change (maintenance/envset.env_change), then its lines
    or the envelope, and the worst exit code. `force`: env-unset's and
    env-push's --force (env_would)."""
    from ..host.record import default_actor
    from ..host.would import lines
    from ..maintenance.envset import env_change, exit_code, nothing_words
    from .deploy import inventory_flag
    from .maintenance import each_host, errors_out, progress_for

    who, env_files = actor or default_actor(), {}

    def one(cxn, host):
        env_files[host.name] = host.env_file  # the file a dry run that changes nothing names
        return env_change(cxn, host, change, who, trigger, dry_run=dry_run,
                          progress=None if json or dry_run else progress_for(host),
                          inventory=inventory_flag(inventory), force=force)

    outcome = each_host(inventory, hosts, one, accept_new, connect_timeout)
    codes = [exit_code(r.value) if r.ok else r.code for r in outcome.results]
    if json:
        print_envelope(outcome.results, code=errors.worst(codes))
    else:
        for r in outcome.results:
            if r.ok and dry_run:
                none = nothing_words(change, env_files.get(r.host, ".env"))  # the real run's words (#29)
                for line in lines(r.value["would"], f"[{r.host}] ", none=none):
                    print_text(line)
        errors_out(outcome)
    finish(errors.worst(codes))


@fabops_task(name="env-set", positional=["key"], help={
    "key": "The variable to set (a shell variable name); its value is typed at a prompt that does not echo, "
           "or piped on stdin, never given as an argument.",
    "allow_empty": "Set KEY to an empty value on purpose (an empty value is refused otherwise: "
                   "a pipe from an unset variable would wipe the secret).",
    **_HELP,
})
def env_set(c, key=None, allow_empty=False, hosts=None, dry_run=False, actor=None, json=False, inventory=None,
            accept_new=False, connect_timeout=None):
    """Set one .env variable on the host (value from a hidden prompt or stdin); back up, restart its readers, gate."""
    from ..maintenance.envset import Change, check_key

    if _help_asked(key, "env-set", "KEY"):
        return
    key = check_key(key)
    _run(Change(set={key: read_value(key, allow_empty)}), "env-set", hosts, dry_run, actor, json, inventory,
         accept_new, connect_timeout)


@fabops_task(name="env-unset", positional=["key"], help={"key": "The variable to remove.", **_FORCE, **_HELP})
def env_unset(c, key=None, force=False, hosts=None, dry_run=False, actor=None, json=False, inventory=None,
              accept_new=False, connect_timeout=None):
    """Remove one .env variable on the host; back up, restart its readers, gate."""
    from ..maintenance.envset import Change, check_key

    if _help_asked(key, "env-unset", "KEY"):
        return
    _run(Change(unset=[check_key(key)]), "env-unset", hosts, dry_run, actor, json, inventory, accept_new,
         connect_timeout, force)


@fabops_task(name="env-push", positional=["file"], help={
    "file": "A local .env whose variables are set on the host (names shown, values never).",
    "prune": "Also remove the host's variables FILE does not name (default: kept).",
    **_FORCE, **_HELP,
})
def env_push(c, file=None, prune=False, force=False, hosts=None, dry_run=False, actor=None, json=False, inventory=None,
             accept_new=False, connect_timeout=None):
    """Merge a local .env into the host's (keys shown, values never); back up, restart its readers, gate."""
    from ..maintenance.envset import push_change

    if _help_asked(file, "env-push", "FILE [--prune]"):
        return
    if not file:
        raise errors.UsageError("env-push needs a FILE: a local .env to merge in")
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.UsageError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    _run(push_change(text, prune=prune), "env-push", hosts, dry_run, actor, json, inventory, accept_new,
         connect_timeout, force)


ns = Collection("envset", env_set, env_unset, env_push)
