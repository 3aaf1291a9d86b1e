"""Start a service fabops wrote a unit for: read the app's `.env` as the
service's own user, then exec its command (docs/architecture.md, "Units").

systemd reads an `EnvironmentFile=` as root, before it drops to `User=`, so
a `.env` that the deploy user turns into a symlink to a root-only file
(`ln -sf /root/.aws/credentials .env; sudo systemctl restart bot`) would
hand that file to a process the deploy user owns. Here the file is opened
by the service's user: such a link gives EACCES, and the service does not
start. The unit's ExecStart= names a root-owned script that execs this
module, so the command's text is read by sh, never by systemd's parser.

Usage: python -m fabops.host.launch ENV_FILE COMMAND
"""
import os
import sys

from .preflight import env_pairs

EX_CONFIG = 78


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
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.stderr.write("usage: python -m fabops.host.launch ENV_FILE COMMAND\n")
        return 64
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
