"""/metrics when the metrics directory is unusable from the start: never a silent partial 200
(Prometheus would see a healthy target with no traffic), never a 500 - a 503 that says why, on
the app port and on the master's listener alike (issue 23, item 11).

The four ways a directory is unusable at start: its filesystem is full (a small tmpfs filled to
the last byte), it is read-only (a read-only tmpfs), its parent is a file, its name is too long.
"""

from __future__ import annotations

import pytest
import requests

from aura.testing.servers import free_port
from tests.resilience.conftest import TIMEOUT
from tests.resilience.test_metrics_dir_faults import _fill, tmpfs  # noqa: F401 - the fixture

pytestmark = pytest.mark.gunicorn


def _full(tmp_path, tmpfs):  # noqa: F811 - the fixture, passed in
    volume = tmpfs("full", "1m")
    (volume / "metrics").mkdir()
    _fill(volume)  # beside the directory, which holds nothing foreign
    return volume / "metrics", "No space left on device"


def _read_only(tmp_path, tmpfs):  # noqa: F811
    return tmpfs("read-only", "1m", read_only=True), "Read-only file system"


def _parent_is_a_file(tmp_path, tmpfs):  # noqa: F811
    (tmp_path / "a-file").write_text("not a directory")
    return tmp_path / "a-file" / "metrics", "Not a directory"


def _name_too_long(tmp_path, tmpfs):  # noqa: F811
    return tmp_path / ("m" * 300), "File name too long"


CASES = {"full": _full, "read-only": _read_only, "parent-is-a-file": _parent_is_a_file, "name-too-long": _name_too_long}


def _assert_unavailable_with_reason(response: requests.Response, reason: str, where: str) -> None:
    assert response.status_code == 503, (where, response.status_code, response.text[:300])
    body = response.json()
    assert body["error"] == "service_unavailable", (where, body)
    assert reason in body["message"], (where, body)
    assert response.headers.get("Retry-After"), where


@pytest.mark.parametrize("case", CASES)
def test_metrics_answer_503_with_the_reason_when_the_directory_is_unusable(start_gunicorn, tmp_path, tmpfs, case):  # noqa: F811
    directory, reason = CASES[case](tmp_path, tmpfs)
    port = free_port()
    server = start_gunicorn(workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory), METRICS_PORT=str(port))
    for _ in range(5):  # traffic the workers count in memory only
        assert requests.get(server.url + "/healthz", timeout=TIMEOUT).status_code == 200
    assert f"metrics listener on 127.0.0.1:{port}" in server.log_path.read_text(errors="replace"), server.log()
    for where, url in (("app port", server.url), ("listener", f"http://127.0.0.1:{port}")):
        for _ in range(3):  # several scrapes: each worker, and the master
            _assert_unavailable_with_reason(requests.get(url + "/metrics", timeout=TIMEOUT), reason, where)
    log = server.log_path.read_text(errors="replace")
    assert "metrics are degraded" in log and reason in log
    assert "Traceback" not in log, log
    assert server.proc.poll() is None and len(server.wait_for_workers(2)) == 2
