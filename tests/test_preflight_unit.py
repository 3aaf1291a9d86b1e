"""The preflight's pure parts (fabops/host/preflight.py): whose changes are
whose, which .env keys are missing (names only), disk room."""
from fabops.host import preflight as P


def test_sort_changes_tells_a_persons_work_from_fabops_own_and_build_output():
    dirty = ["M app.py", "M package-lock.json", "?? notes.txt", "?? dist/x.js", "?? __pycache__/a.pyc",
             "R new.py <- old.py"]
    in_the_way = {"notes.txt", "dist/x.js"}
    theirs_status, theirs, kept = P.sort_changes(
        dirty, own=["package-lock.json", "dist/x.js"], tracked_in=lambda us: [u for u in us if u in in_the_way])
    assert theirs_status == ["M app.py", "R new.py <- old.py", "?? notes.txt"]
    assert theirs == ["notes.txt"] and kept == ["__pycache__/a.pyc"]


def test_missing_env_keys_are_names_never_values(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# comment\nexport DISCORD_TOKEN=s3cr3t\nPORT = 3003\nbad line\n")
    template = "DISCORD_TOKEN=\nPORT=\nPYTHON_API_URL=\n"
    assert P.missing_env_keys(template, str(env)) == ["PYTHON_API_URL"]
    assert P.missing_env_keys(None, str(env)) == []  # the target has no template
    assert P.missing_env_keys(template, str(tmp_path / "none")) == ["DISCORD_TOKEN", "PORT", "PYTHON_API_URL"]


def test_status_path_and_disk_problem(tmp_path, monkeypatch):
    assert P.status_path("R new.py <- old.py") == "new.py" and P.status_path("?? a b.txt") == "a b.txt"
    assert P.disk_problem([("app", str(tmp_path))]) is None
    monkeypatch.setattr(P, "MIN_FREE_BYTES", 1 << 62)  # more than any disk has
    assert "disk full" in P.disk_problem([("app", str(tmp_path))])
