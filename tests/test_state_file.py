"""state.json's one merge (host/state.merge_state_file) and a run's one
reader (StateFile): a run loads it once and saves only what it changed,
so another writer's keys (health from cron, unpin over SSH) survive."""
from __future__ import annotations

import json
import multiprocessing
import os

from fabops.host.state import State, StateFile, merge_state_file, save_state


def read(path) -> dict:
    return json.loads(open(path).read())


def test_two_writers_keep_each_others_fields(tmp_path):
    path = str(tmp_path / "state.json")
    save_state(path, State(deployed="a" * 40))
    run, health = StateFile(path), StateFile(path)
    mine, theirs = run.load(), health.load()
    mine.in_progress = {"run_id": "r1", "to": "b" * 40}
    run.save(mine)
    theirs.health = {"status": "down", "since": 1.0}
    health.save(theirs)  # a whole-file write here would drop in_progress
    mine.deployed, mine.in_progress = "b" * 40, None
    run.save(mine)  # ... and here it would drop health's status
    on_disk = read(path)
    assert on_disk["deployed"] == "b" * 40 and on_disk["in_progress"] is None
    assert on_disk["health"] == {"status": "down", "since": 1.0}
    assert mine.health == {"status": "down", "since": 1.0}  # the run's State holds the other writer's keys too


def test_unknown_keys_and_a_missing_file(tmp_path):
    path = str(tmp_path / "home" / "state.json")
    before, after = merge_state_file(path, {"pin": "c" * 40})
    assert before == {"pin": None} and after == {"pin": "c" * 40}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600" and open(path).read().endswith("}\n")
    merge_state_file(path, {"from_a_newer_release": 1})
    st = StateFile(path)
    state = st.load()
    state.last_result = "noop"
    st.save(state)
    assert read(path)["from_a_newer_release"] == 1  # a key this release does not know is kept
    # and every key of State is there, but `verdict`: read, never written by a run (its writers' key)
    assert set(State.__dataclass_fields__) - {"verdict"} <= set(read(path))
    assert "verdict" not in read(path)


def test_a_first_save_writes_every_key(tmp_path):
    path = str(tmp_path / "state.json")
    st = StateFile(path)
    state = st.load()
    state.last_result = "noop"
    st.save(state)
    every = json.loads(State(last_result="noop").to_json())
    assert read(path) == {k: v for k, v in every.items() if k != "verdict"}  # a run never writes the verdict


def test_a_corrupt_file_starts_over_and_is_kept_aside(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"deployed": "a", "pin": "a",')  # a hand edit's typo
    before, after = merge_state_file(str(path), {"deployed": "d" * 40})
    assert after == {"deployed": "d" * 40}
    kept = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"deployed": "a", "pin": "a",'  # nothing lost
    path.write_text("[1, 2]")  # JSON, but not an object
    merge_state_file(str(path), {"deployed": "e" * 40})
    assert sorted(p.read_text() for p in tmp_path.glob("state.json.corrupt-*")) == [
        "[1, 2]", '{"deployed": "a", "pin": "a",']


def _bump(path: str, key: str, n: int) -> None:
    for i in range(n):
        merge_state_file(path, {key: i + 1})


def test_concurrent_merges_lose_nothing(tmp_path):
    """Processes merging different keys at once: the home directory's flock
    serialises them, so every key ends at its last value."""
    path = str(tmp_path / "state.json")
    procs = [multiprocessing.Process(target=_bump, args=(path, f"k{j}", 40)) for j in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert {k: v for k, v in read(path).items()} == {f"k{j}": 40 for j in range(4)}


def test_atomic_writes_make_their_temp_file_exclusively_and_leave_none(tmp_path):
    """files.new_temp and merge_state_file make their temp file as
    tempfile.mkstemp would (O_EXCL, 0600) without importing tempfile (the
    cron path's allow-list, tests/test_fastpath.py): nothing is left
    beside the file, and the result is private."""
    import stat

    from fabops.host import files
    from fabops.host.state import merge_state_file

    files.atomic_write(str(tmp_path / "a.json"), "{}\n", mode=0o600)
    merge_state_file(str(tmp_path / "state.json"), {"deployed": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "state.json"]
    assert stat.S_IMODE((tmp_path / "state.json").stat().st_mode) == 0o600
    fd, tmp = files.new_temp(str(tmp_path))
    os.close(fd)
    assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o600 and os.path.basename(tmp).startswith(".tmp-")
    fd2, tmp2 = files.new_temp(str(tmp_path))
    os.close(fd2)
    assert tmp2 != tmp
