import subprocess

import pytest
from hypothesis import given, strategies as st

from fabops.errors import SudoError
from fabops.shell import in_dir, join, quote_path, sudo, sudo_failure, with_env


def test_builders_exact_strings():
    assert sudo(["systemctl", "restart", "bot.service"]) == "sudo -n systemctl restart bot.service"
    assert join(["echo", "a b", "$(id)"]) == "echo 'a b' '$(id)'"
    assert with_env("npm ci", {"PATH": "/usr/bin:/bin", "X": "a b"}) == "export PATH=/usr/bin:/bin X='a b'; npm ci"
    assert with_env("npm ci", {}) == "npm ci"
    assert quote_path("~/app dir") == "\"$HOME\"/'app dir'"
    assert quote_path("/srv/app") == "/srv/app"
    assert in_dir("~/app", "ls") == "cd \"$HOME\"/app && ls"


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
