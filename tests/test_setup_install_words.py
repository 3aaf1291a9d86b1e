"""#24 (wording): `setup --check` said `would change  fabops install: would
install fabops 1.0.0 (…)`, and its `would` line `would change fabops
install: would install …`: two `would`s in one line. The item's message
says what changes once; a real setup says what it did, as before."""
from types import SimpleNamespace

import pytest

from fabops.host.would import lines
from fabops.install import InstallResult


@pytest.mark.parametrize("check, said, status, message", [
    (True, "would upgrade from 0.9.0 fabops 1.0.0 (pinned host-cp311-x86_64.txt)", "would change",
     "upgrade from 0.9.0 fabops 1.0.0 (pinned host-cp311-x86_64.txt)"),
    (True, "would install fabops 1.0.0 (pinned host-cp311-x86_64.txt)", "would change",
     "install fabops 1.0.0 (pinned host-cp311-x86_64.txt)"),
    (False, "install fabops 1.0.0 (python 3.11, pinned host-cp311-x86_64.txt)", "changed",
     "install fabops 1.0.0 (python 3.11, pinned host-cp311-x86_64.txt)"),
])
def test_the_install_item_says_would_once(monkeypatch, check, said, status, message):
    import fabops.install
    from fabops.setup import _install, would
    from fabops.tasks.setup import item_lines

    monkeypatch.setattr(fabops.install, "ensure_installed",
                        lambda *a, **kw: InstallResult(True, "1.0.0", "ab" * 32, "3.11", said))
    run = SimpleNamespace(dt=None, host=SimpleNamespace(name="h1"), offline=False, check=check)
    [item] = list(_install(run))
    assert (item.status, item.message) == (status, message), item
    shown = " ".join(item_lines("h1", item, 200, diff=False) + lines(would([item])))
    assert shown.count("would") == (2 if check else 0), shown  # the status, and the one `would` line
    assert "would change fabops install: " + message.split(" (")[0] in shown or not check, shown
