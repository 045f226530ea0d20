"""Structured logs and request ids (issue 11): ``X-Request-Id`` honoured when sane, replaced
when hostile, echoed in the response; with ``log_format="json"`` every line is one JSON object
and each request has one access line (method, path, query without secrets, status, bytes,
duration_ms, route, request_id); log lines emitted during a request carry its id, and nothing
(id, error) leaks into the next request."""

from __future__ import annotations

import json
import logging
import re

import pytest

from mapserver.app import create_app
from mapserver.security.users import hash_password
from mapserver.settings import PROJECT_ROOT, Settings

S = "/arcgis/rest/services/World/MapServer"
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def json_app(tmp_path_factory):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    tmp = tmp_path_factory.mktemp("json-logs")
    users = tmp / "users.json"
    users.write_text(json.dumps({"users": {"alice": {"password": hash_password("pw"),
                                                     "roles": []}}}))
    app = create_app(Settings(service_dirs=(PROJECT_ROOT / "services",),
                              data_dir=PROJECT_ROOT / "data", output_dir=tmp / "out",
                              tile_cache_dir=tmp / "tiles", users_file=users, secret="s",
                              log_format="json"))

    def boom() -> str:  # an unexpected exception inside a view (a bug, not bad input)
        raise RuntimeError("kaboom\nsecond line")

    app.add_url_rule("/test-boom", "test_boom", boom)
    yield app
    for h in list(root.handlers):
        if h not in saved[0]:
            root.removeHandler(h)
    root.setLevel(saved[1])


def json_lines(err: str) -> list[dict]:
    """Every line the app wrote to stderr, each parsed as one JSON object (fails if not)."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def access_lines(lines: list[dict]) -> list[dict]:
    return [d for d in lines if d["logger"] == "mapserver.access"]


def test_access_line_fields(json_app, capsys):
    http = json_app.test_client()
    capsys.readouterr()
    resp = http.get(S + "?f=json&token=SECRET-TOKEN&password=p4ss",
                    headers={"X-Request-Id": "edge-7f3a.1_b"}, buffered=True)
    assert resp.status_code == 200 and resp.headers["X-Request-Id"] == "edge-7f3a.1_b"
    lines = json_lines(capsys.readouterr().err)
    (line,) = access_lines(lines)
    assert set(line) == {"time", "level", "logger", "message", "request_id", "method", "path",
                         "query", "status", "bytes", "duration_ms", "route"}
    assert line["level"] == "INFO" and line["request_id"] == "edge-7f3a.1_b"
    assert line["method"] == "GET" and line["path"] == S and line["query"] == "f=json"
    assert line["status"] == 200 and line["bytes"] == len(resp.data)
    assert line["route"] == "service"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert "SECRET-TOKEN" not in json.dumps(lines) and "p4ss" not in json.dumps(lines)


def test_access_line_of_an_arcgis_error_and_a_304(json_app, capsys):
    http = json_app.test_client()
    tag = http.get(S + "?f=json", buffered=True).headers["ETag"]
    capsys.readouterr()
    http.get(S + "/1/query?where=nosuchfield%3D1&f=json", buffered=True)
    not_modified = http.get(S + "?f=json", headers={"If-None-Match": tag}, buffered=True)
    assert not_modified.status_code == 304
    error, cached = access_lines(json_lines(capsys.readouterr().err))
    assert error["status"] == 200 and error["arcgis_error"] == 400 and error["route"] == "query"
    assert cached["status"] == 304 and cached["bytes"] == 0


def test_request_id_reaches_log_lines_emitted_during_the_request(json_app, capsys):
    http = json_app.test_client()
    capsys.readouterr()
    resp = http.post("/arcgis/tokens/generateToken",
                     data={"username": "alice", "password": "wrong"}, buffered=True)
    assert resp.get_json()["error"]["code"] == 400
    rid = resp.headers["X-Request-Id"]
    assert GENERATED.fullmatch(rid)
    lines = json_lines(capsys.readouterr().err)
    (signin,) = [d for d in lines if "failed sign-in" in d["message"]]
    assert signin["request_id"] == rid and signin["logger"] == "mapserver.security.web"
    (access,) = access_lines(lines)
    assert access["request_id"] == rid and access["route"] == "tokens"


def test_an_exception_in_a_view_then_an_ordinary_request(json_app, capsys):
    """The traceback is one JSON line carrying the failing request's id; the next request
    has its own id, a 200 and no trace of the error."""
    http = json_app.test_client()
    capsys.readouterr()
    bad = http.get("/test-boom?f=json", headers={"X-Request-Id": "req-boom"}, buffered=True)
    assert bad.get_json()["error"]["code"] == 500
    assert "kaboom" not in bad.get_data(as_text=True)
    lines = json_lines(capsys.readouterr().err)
    (error,) = [d for d in lines if d["level"] == "ERROR"]
    assert error["request_id"] == "req-boom"
    assert "RuntimeError: kaboom" in error["exception"] and "Traceback" in error["exception"]
    ok = http.get(S + "?f=json", buffered=True)
    assert ok.status_code == 200 and "error" not in ok.get_json()
    after = json_lines(capsys.readouterr().err)
    assert ok.headers["X-Request-Id"] != "req-boom"
    assert [d["request_id"] for d in after] == [ok.headers["X-Request-Id"]]
    assert [d["level"] for d in after] == ["INFO"]


@pytest.mark.parametrize("hostile", [
    "a" * 10_000, "a" * 65, "line\nforged {\"level\": \"ERROR\"}", "tab\tid", "", "id with space",
    "é-unicode", "../../etc/passwd", "id;rm"])
def test_hostile_request_ids_are_replaced(json_app, capsys, hostile):
    http = json_app.test_client()
    capsys.readouterr()
    resp = http.get(S + "?f=json", environ_overrides={"HTTP_X_REQUEST_ID": hostile},
                    buffered=True)
    assert resp.status_code == 200
    rid = resp.headers["X-Request-Id"]
    assert GENERATED.fullmatch(rid), rid
    err = capsys.readouterr().err
    assert hostile not in err or hostile == ""
    (line,) = access_lines(json_lines(err))
    assert line["request_id"] == rid
    # and the next ordinary request keeps its own sane id
    nxt = http.get(S + "?f=json", headers={"X-Request-Id": "next-1"}, buffered=True)
    assert nxt.headers["X-Request-Id"] == "next-1"
    (line,) = access_lines(json_lines(capsys.readouterr().err))
    assert line["request_id"] == "next-1"


def test_ids_are_unique_and_the_longest_sane_one_is_kept(json_app):
    http = json_app.test_client()
    ids = {http.get("/arcgis/rest/info?f=json").headers["X-Request-Id"] for _ in range(20)}
    assert len(ids) == 20 and all(GENERATED.fullmatch(i) for i in ids)
    sane = "A" * 64
    assert http.get("/arcgis/rest/info?f=json",
                    headers={"X-Request-Id": sane}).headers["X-Request-Id"] == sane


def test_text_format_leaves_logging_as_it_was(tmp_path, settings):
    root = logging.getLogger()
    handlers = list(root.handlers)
    app = create_app(Settings(service_dirs=settings.service_dirs, data_dir=settings.data_dir,
                              output_dir=tmp_path / "out", tile_cache_dir=tmp_path / "t"))
    assert list(root.handlers) == handlers
    resp = app.test_client().get(S + "?f=json", headers={"X-Request-Id": "text-1"})
    assert resp.headers["X-Request-Id"] == "text-1"


def test_json_lines_from_other_loggers_outside_requests(json_app, capsys):
    logging.getLogger("mapserver.some.module").warning("outside %s", "a request")
    (line,) = json_lines(capsys.readouterr().err)
    assert line["message"] == "outside a request" and line["level"] == "WARNING"
    assert "request_id" not in line
