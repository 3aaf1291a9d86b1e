import subprocess

import pytest
from hypothesis import given, strategies as st

from fabops.errors import SudoError
from fabops.shell import Cmd, in_dir, inventory_shell, join, path, quote_path, raw, sh, sudo, sudo_failure, with_env


def _words(cmd, env=None) -> list:
    """The words a real /bin/sh sees in `cmd`, after its own quoting and
    expansion (set -- puts them in "$@")."""
    out = subprocess.run(["sh", "-c", f'set -- {cmd}; printf "%s\\n" "$@"'], capture_output=True, text=True,
                         env=env, check=True).stdout
    return out.splitlines()


def _run(cmd, env=None, cwd=None) -> str:
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, cwd=cwd, check=True).stdout


def test_builders_give_the_shell_exactly_the_words_meant(tmp_path):
    """Behaviour in a real shell, not the text: what each builder's command
    means to /bin/sh."""
    assert _words(sudo(["systemctl", "restart", "bot.service"])) == ["sudo", "-n", "systemctl", "restart", "bot.service"]
    assert _words(join(["echo", "a b", "$(id)", "*"])) == ["echo", "a b", "$(id)", "*"]
    home = {"HOME": "/h", "PATH": "/usr/bin:/bin"}
    assert _words(quote_path("~/app dir; x"), env=home) == ["/h/app dir; x"]
    assert _words(quote_path("~"), env=home) == ["/h"]
    assert _words(quote_path("/srv/a b"), env=home) == ["/srv/a b"]
    show = raw('printf "%s|%s\\n" "$PATH" "$X"')
    assert _run(with_env(show, {"PATH": "/usr/bin:/bin", "X": "a b; $(id)"})) == "/usr/bin:/bin|a b; $(id)\n"
    assert with_env(show, {}) == show  # no environment: the command as it is
    (tmp_path / "app dir").mkdir()
    assert _run(in_dir("~/app dir", raw("pwd")), env={**home, "HOME": str(tmp_path)}).strip() == str(tmp_path / "app dir")


def test_sh_quotes_every_plain_value_and_embeds_only_typed_parts():
    cmd = sh("cat {f} {p} | {tail} -n {n} {words}", f="a b; $(id)", p=path("~/x y"), tail=raw("tail"), n=5,
             words=["-x", "c'd"])
    assert isinstance(cmd, Cmd)
    assert _words(sh("{f} {p} {n} {words}", f="a b; $(id)", p=path("~/x y"), n=5, words=["-x", "c'd"]),
                  env={"HOME": "/h"}) == ["a b; $(id)", "/h/x y", "5", "-x", "c'd"]
    assert sh("{inner}; echo", inner=cmd).startswith("cat 'a b; $(id)'")  # a Cmd embeds as it is
    assert isinstance(sh("{a}", a="x") + "y", str)  # concatenation loses the type: sh() would quote it


def test_plain_strings_are_never_taken_as_shell_code():
    """in_dir, with_env and lines take commands; a str there would be shell
    code spliced from nowhere."""
    for call in (lambda: in_dir("~/app", "ls; id"), lambda: with_env("ls; id", {"X": "1"})):
        with pytest.raises(TypeError):
            call()
    with pytest.raises(TypeError):
        sh("echo {flag}", flag=True)
    with pytest.raises(ValueError):
        with_env(raw("true"), {"X; id": "1"})


def test_sudo_failure_names_the_rule():
    err = sudo_failure("sudo: a password is required\n", ["systemctl", "restart", "x.service"], host="h")
    assert isinstance(err, SudoError) and err.exit_code == 3
    assert "sudo needs a password for `systemctl restart x.service`" in str(err)
    assert sudo_failure("Failed to restart x.service: Unit not found.", ["systemctl"]) is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40))
def test_quote_path_is_data_to_a_real_shell(text):
    path = "~/" + text
    out = subprocess.run(["sh", "-c", f"printf %s {quote_path(path)}"], capture_output=True, env={"HOME": "/h"})
    assert out.stdout.decode("utf-8", "surrogateescape") == ("/h/" + text if text else "/h")


def test_any_name_can_be_a_value_even_template():
    """sh's own parameter is positional-only: put_file's `{template}` once
    collided with it and every setup file write failed."""
    assert sh("mktemp {template}", template=path("~/x.XXXX")) == 'mktemp "$HOME"/x.XXXX'


def test_one_format_for_a_failed_command():
    from types import SimpleNamespace

    from fabops.errors import CommandFailed

    err = CommandFailed.from_result("git fetch", SimpleNamespace(stderr="warning: x\nfatal: no remote\n\n", stdout="",
                                                                  exited=128), host="h")
    assert str(err.message) == "git fetch failed: fatal: no remote" and err.exit_code == 2
    quiet = CommandFailed.from_result("unpin", SimpleNamespace(stderr="", stdout="", exited=1))
    assert quiet.message == "unpin failed: exit 1"
