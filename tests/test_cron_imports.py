"""What a cron poll's HTTP check and file writes leave unimported
(docs/benchmarks.md, "One python3 on the host, and cron's no-op poll"):
urllib.parse with its ipaddress, the idna codec and hashlib were about
5 ms of every poll. Each runs in a bare interpreter (`-I -S`): the test
process and a venv's site hooks have most of them loaded already."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _loaded(code: str, *names: str) -> list:
    """Which of `names` are in sys.modules after `code`, in a bare python."""
    probe = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n{code}\nprint([n for n in {names!r} if n in sys.modules])"
    r = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return eval(r.stdout)  # noqa: S307 - our own print of a list of names


def test_a_plain_check_needs_no_url_parser_nor_idna_codec():
    """A check of http://127.0.0.1:PORT/ (nobody listening: the same
    split, request and dial as a real one) and of http://localhost:PORT/."""
    code = ("import socket\nfrom fabops.host import httpcheck\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
            "for url in ('http://127.0.0.1:%d/health?x=1' % port, 'http://localhost:%d/' % port):\n"
            "    status, detail, _ = httpcheck.request({'url': url, 'method': 'POST', 'headers': {'X': 'y'}, 'body': '',"
            " 'timeout': 2.0})\n"
            "    assert status is None and 'no answer' in detail, detail")
    assert _loaded(code, "urllib.parse", "ipaddress", "encodings.idna") == []


def test_a_check_with_a_user_part_still_splits_it_with_urllib():
    """Not a plain URL: urlsplit and unquote, as before."""
    code = ("from fabops.host import httpcheck\n"
            "parts = httpcheck._url('http://a%40b:p@127.0.0.1:9/')\n"
            "assert httpcheck._headers({}, parts, 9, None)['Authorization'] == 'Basic YUBiOnA='")
    assert _loaded(code, "urllib.parse") == ["urllib.parse"]


def test_the_host_files_module_loads_no_hash_until_it_hashes():
    assert _loaded("from fabops.host import files", "hashlib", "_hashlib") == []
    assert _loaded("from fabops.host import files\nimport os\nfiles.sha256_file(os.devnull)", "hashlib") == ["hashlib"]
