import io
import threading
import time

from fabops.errors import INTERNAL, OK, UNREACHABLE, UnreachableError, worst
from fabops.fanout import run_hosts
from fabops.tasks.render import PrefixWriter


class H:
    def __init__(self, name):
        self.name = name


def test_collects_every_result_and_error_in_order():
    def fn(h):
        if h.name == "b":
            raise UnreachableError("down", host="b")
        if h.name == "c":
            raise KeyError("bug")
        return h.name.upper()

    out = run_hosts([H("a"), H("b"), H("c"), H("d")], fn, parallel=3)
    assert [r.host for r in out.results] == ["a", "b", "c", "d"]
    assert [r.code for r in out.results] == [OK, UNREACHABLE, INTERNAL, OK]
    assert out.results[0].value == "A" and out.results[3].value == "D"
    assert out.code == INTERNAL


def test_parallelism_is_bounded_and_really_parallel():
    """Exactly `parallel` calls run at once, proven by a barrier: four calls
    must all be inside fn together before any may leave (a serial fan-out
    would time out on the barrier), and a fifth never joins them. No timing
    is asserted: the barrier waits as long as the machine needs."""
    barrier = threading.Barrier(4, timeout=60)
    live, peak, lock = [0], [0], threading.Lock()

    def fn(h):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        if int(h.name) < 8:  # the first two batches meet at the barrier
            barrier.wait()
        with lock:
            live[0] -= 1
        return h.name

    out = run_hosts([H(str(i)) for i in range(12)], fn, parallel=4)
    assert [r.code for r in out.results] == [OK] * 12, [r.error for r in out.results if r.error]
    assert peak[0] == 4


def test_worst_code_ranking():
    assert worst([0, 3, 1]) == 1  # WARNING outranks UNKNOWN, as in Nagios
    assert worst([0, 1, 2, 3]) == 2
    assert worst([3, 4]) == 3
    assert worst([2, 5]) == 5
    assert worst([]) == 0


def test_prefix_writer_never_interleaves_partial_lines():
    stream = io.StringIO()
    writers = [PrefixWriter(f"[h{i}]".ljust(4) + " ", stream) for i in range(4)]

    def spam(w):
        for n in range(200):
            w.write(f"part-{n}-")
            w.write("end\n")

    threads = [threading.Thread(target=spam, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 800
    for line in lines:
        prefix, body = line.split(" ", 1)
        assert prefix.startswith("[h") and body.strip().startswith("part-") and body.endswith("-end")


def test_a_timeout_is_reported_even_when_the_timer_thread_lingers():
    """Invoke asks whether its timer thread is still alive to decide that a
    command timed out; on a busy machine the command's end can win that race
    and a timeout came back as an ordinary failure with partial output. The
    lingering kill below makes the race certain: invoke's own runner loses
    it, ours still raises CommandTimedOut (exit 3 via map_failure)."""
    import pytest
    from invoke import Config, Context
    from invoke.exceptions import CommandTimedOut
    from invoke.runners import Local

    from fabops.connection import timeout_runner
    from fabops.fanout import map_failure

    def lingering(cls):
        class Slow(cls):
            def kill(self):
                super().kill()
                time.sleep(0.5)  # the timer thread is still alive meanwhile
        return Slow

    def run(cls):
        ctx = Context(config=Config(overrides={"runners": {"local": lingering(cls)}}))
        return ctx.run("sleep 5", timeout=0.2, warn=True, hide=True, in_stream=False)

    result = run(Local)  # invoke alone: no exception, a plain failed result
    assert result.exited != 0
    with pytest.raises(CommandTimedOut) as info:
        run(timeout_runner(Local))
    err = map_failure(info.value, host="h")
    assert err is not None and err.exit_code == UNREACHABLE and "timed out after 0.2" in str(err)


def test_a_hosts_bug_shows_its_traceback_under_debug(monkeypatch, capsys):
    """exit 70 in one host's thread: errors.md tells the user to rerun with
    --debug for the traceback, so --debug must print it (it printed only
    the one line)."""
    from fabops.fanout import run_hosts
    from fabops.tasks.render import host_errors

    def boom(host):
        raise AttributeError("half-imported module")

    results = run_hosts(["local", "other"], boom, parallel=2).results
    monkeypatch.setenv("FABOPS_DEBUG", "1")
    host_errors(results)
    err = capsys.readouterr().err
    assert err.count("Traceback (most recent call last)") == 2 and "in boom" in err, err
    assert "fabops: local: " in err
    monkeypatch.delenv("FABOPS_DEBUG")
    host_errors(results)
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("fabops: ") == 2, err
