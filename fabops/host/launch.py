"""Start a service fabops wrote a unit for: read the app's `.env` as the
service's own user, then exec its command (docs/architecture.md, "Units").

systemd reads an `EnvironmentFile=` as root, before it drops to `User=`, so
a `.env` that the deploy user turns into a symlink to a root-only file
(`ln -sf /root/.aws/credentials .env; sudo systemctl restart bot`) would
hand that file to a process the deploy user owns. Here the file is opened
by the service's user: such a link gives EACCES, and the service does not
start. The unit's ExecStart= names a root-owned script that execs this
module, so the command's text is read by sh, never by systemd's parser.

A restore cut off while putting items back leaves its hold file
(HostPaths.restore_hold, read as host/hold.py says): the launcher script
setup writes checks it in its own sh before it runs this module
(host/hold.hold_check), so a unit holds whatever version of fabops the
venv has; this module keeps `--hold FILE`, which the launchers of the
first fabops with the hold still pass: while the hold stands it says why on stderr (the
journal) and exits EX_TEMPFAIL (docs/backups.md, "The hold"). The file is
read as the service's user, never as root.

Usage: python -m fabops.host.launch [--hold FILE] ENV_FILE COMMAND
       python -m fabops.host.launch --hold FILE   (the check alone)
"""
import os
import sys

from .hold import EX_TEMPFAIL, read_hold, refusal
from .preflight import env_pairs

EX_CONFIG = 78
USAGE = ("usage: python -m fabops.host.launch [--hold FILE] ENV_FILE COMMAND\n"
         "       python -m fabops.host.launch --hold FILE\n")


def refuse(hold_file: str) -> bool:
    """True (the refusal said on stderr) while the hold stands (host/hold.read_hold)."""
    words = read_hold(hold_file)
    if words is None:
        return False
    sys.stderr.write(refusal(words, hold_file) + "\n")
    sys.stderr.flush()
    return True


def environment(env_file: str):
    """(the .env's pairs, or None with why it could not be read). A
    missing file is no error, as with systemd's `EnvironmentFile=-`."""
    try:
        with open(env_file, encoding="utf-8", errors="replace") as fh:
            return env_pairs(fh.read()), None
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return None, exc.strerror or exc.__class__.__name__


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    hold = argv[1] if len(argv) >= 2 and argv[0] == "--hold" else None
    argv = argv[2:] if hold is not None else argv
    if len(argv) != 2 and not (hold is not None and not argv):
        sys.stderr.write(USAGE)
        return 64
    if hold is not None and refuse(hold):
        return EX_TEMPFAIL
    if not argv:  # the check alone (the unit's ExecStartPre=): it may start
        return 0
    env_file, command = argv
    pairs, problem = environment(env_file)
    if pairs is None:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
        sys.stderr.write(f"fabops: cannot read {env_file} as {user}: {problem}; not starting without it "
                         f"(the service's user must own its .env)\n")
        return EX_CONFIG
    os.environ.update(pairs)
    os.execv("/bin/sh", ["/bin/sh", "-c", "exec " + command])
    return 0  # unreachable: execv replaced this process


if __name__ == "__main__":
    sys.exit(main())
