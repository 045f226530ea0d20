"""Access control, ArcGIS style (mapserver/security/): generateToken, tokens as parameter or
header, 499/498/403 bodies, per-service access, the catalog as each caller sees it, the /v1
bearer rule and off switch, CORS per resource, the long-URL guard, :wait slots, 404 and the
health check. Flask test client on a small catalog: a public copy of World, a secured one in a
folder (user alice) and one secured by role (analysts)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from mapserver.app import create_app
from mapserver.catalog.loader import load_catalog
from mapserver.jobs.config import JobConfig
from mapserver.rest.jobs import install
from mapserver.security import tokens as tokens_module
from mapserver.security.users import hash_password
from mapserver.security.users import main as users_cli
from mapserver.serving import wait_slot
from mapserver.settings import PROJECT_ROOT, Settings

WORLD_DEF = json.loads((PROJECT_ROOT / "services" / "World.json").read_text())
APP_ORIGIN = "https://app.example"
OPEN = "/arcgis/rest/services/Open/MapServer"
SECURE = "/arcgis/rest/services/Secure/World/MapServer"
TEAM = "/arcgis/rest/services/Team/MapServer"
EXPORT_ARGS = "bbox=-180,-90,180,90&size=64,32&f=json"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


def write_services(root: Path) -> Path:
    (root / "Secure").mkdir(parents=True)
    (root / "Open.json").write_text(json.dumps(WORLD_DEF))
    (root / "Secure" / "World.json").write_text(json.dumps(
        {**WORLD_DEF, "access": {"users": ["alice"]}}))
    (root / "Team.json").write_text(json.dumps({**WORLD_DEF, "access": {"roles": ["analysts"]}}))
    return root


@pytest.fixture(scope="module")
def users_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.json"
    roles = {"alice": ["analysts"], "bob": [], "carol": ["analysts", "batch"]}
    path.write_text(json.dumps({"users": {
        name: {"password": hash_password(pw), "roles": roles[name]}
        for name, pw in PASSWORDS.items()}}))
    return path


def make_settings(tmp: Path, users_file: Path | None, **extra) -> Settings:
    return Settings(service_dirs=(write_services(tmp / "services"),),
                    data_dir=PROJECT_ROOT / "data", output_dir=tmp / "output",
                    tile_cache_dir=tmp / "tiles", users_file=users_file,
                    secret="test-secret", cors_origins=("*", APP_ORIGIN), api_keys=("key-1",),
                    **extra)


@pytest.fixture(scope="module")
def secured(tmp_path_factory, users_file):
    tmp = tmp_path_factory.mktemp("secured")
    app = create_app(make_settings(tmp, users_file))
    svc = install(app, JobConfig(db_path=tmp / "jobs" / "jobs.sqlite",
                                 bucket_root=tmp / "buckets", dispatch=False))
    yield app
    svc.close()


@pytest.fixture()
def client(secured):
    return secured.test_client()


def token_for(http, user: str, **extra) -> str:
    resp = http.post("/arcgis/tokens/generateToken",
                       data={"username": user, "password": PASSWORDS[user], "f": "json",
                             **extra})
    body = resp.get_json()
    assert "token" in body, body
    return body["token"]


def error_of(resp) -> dict:
    return resp.get_json()["error"]


# --- generateToken --------------------------------------------------------------------------

def test_generate_token_good_and_bad_passwords(client):
    before = time.time()
    resp = client.post("/arcgis/tokens/generateToken", data={
        "username": "alice", "password": "alice-pw", "expiration": "30", "f": "json"})
    body = resp.get_json()
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert set(body) == {"token", "expires", "ssl"} and body["ssl"] is False
    assert before + 30 * 60 - 2 <= body["expires"] / 1000 <= time.time() + 30 * 60 + 1
    for user, password in (("alice", "wrong"), ("nobody", "alice-pw"), ("alice", "")):
        resp = client.post("/arcgis/tokens/generateToken",
                           data={"username": user, "password": password, "f": "json"})
        assert resp.status_code == 200 and error_of(resp) == {
            "code": 400, "message": "Unable to generate token.",
            "details": ["Invalid username or password."]}
    # the ArcGIS Maps SDK posts to tokenServicesUrl itself (/arcgis/tokens/, request=getToken)
    resp = client.post("/arcgis/tokens/", data={"request": "getToken", "username": "bob",
                                                "password": "bob-pw", "f": "json"})
    assert "token" in resp.get_json()


def test_generate_token_refuses_get_and_bad_arguments(client):
    resp = client.get("/arcgis/tokens/generateToken?username=alice&password=alice-pw&f=json")
    assert error_of(resp)["code"] == 405 and "POST" in error_of(resp)["details"][0]
    for extra in ({"expiration": "0"}, {"expiration": "nan"}, {"expiration": "x"},
                  {"client": "referer"}, {"client": "ip"}, {"client": "cookie"}):
        resp = client.post("/arcgis/tokens/generateToken",
                           data={"username": "alice", "password": "alice-pw", **extra})
        assert error_of(resp)["code"] == 400, extra


def test_token_expiry_and_maximum(client, monkeypatch):
    resp = client.post("/arcgis/tokens/generateToken", data={
        "username": "alice", "password": "alice-pw", "expiration": "1"})
    token = resp.get_json()["token"]
    assert "error" not in client.get(f"{SECURE}?f=json&token={token}").get_json()
    real = time.time
    monkeypatch.setattr(tokens_module.time, "time", lambda: real() + 61)
    resp = client.get(f"{SECURE}?f=json&token={token}")
    assert error_of(resp) == {"code": 498, "message": "Invalid Token",
                              "details": ["the token has expired"]}
    monkeypatch.undo()
    # a longer expiration than the maximum (1440 minutes) is cut to the maximum
    resp = client.post("/arcgis/tokens/generateToken", data={
        "username": "alice", "password": "alice-pw", "expiration": "100000"})
    assert resp.get_json()["expires"] / 1000 <= time.time() + 1440 * 60 + 1


def test_referer_and_ip_binding(client):
    token = token_for(client, "alice", client="referer", referer=APP_ORIGIN + "/maps/page.html")
    # browsers send only the origin cross-origin: any page of that origin matches
    for referer in (APP_ORIGIN + "/", APP_ORIGIN + "/other/page.html"):
        resp = client.get(f"{SECURE}?f=json&token={token}", headers={"Referer": referer})
        assert "error" not in resp.get_json(), referer
    for headers in ({"Referer": "https://evil.example/"}, {"Referer": "http://app.example/"},
                    {}):
        resp = client.get(f"{SECURE}?f=json&token={token}", headers=headers)
        assert error_of(resp)["code"] == 498, headers
        assert error_of(resp)["details"] == ["the token was issued for another referer"]
    token = token_for(client, "alice", client="requestip")
    assert "error" not in client.get(f"{SECURE}?f=json&token={token}").get_json()
    resp = client.get(f"{SECURE}?f=json&token={token}",
                      environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert error_of(resp)["details"] == ["the token was issued for another client address"]
    token = token_for(client, "alice", client="ip", ip="10.9.8.7")
    assert "error" not in client.get(f"{SECURE}?f=json&token={token}",
                                     environ_base={"REMOTE_ADDR": "10.9.8.7"}).get_json()


# --- 499 / 498 / 403 ------------------------------------------------------------------------

def test_token_required_invalid_and_forbidden_bodies(client):
    for path in (f"{SECURE}?f=json", f"{SECURE}/export?{EXPORT_ARGS}", f"{SECURE}/1?f=json",
                 f"{SECURE}/1/query?where=1%3D1&f=json", f"{SECURE}/tile/1/0/0",
                 f"{SECURE}/legend?f=json", f"{SECURE}/identify?f=json"):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.mimetype == "application/json", path
        assert resp.get_json() == {"error": {
            "code": 499, "message": "Token Required", "messageCode": "GWM_0003",
            "details": ["Service Secure/World/MapServer is secured: send a token from "
                        "/arcgis/tokens/generateToken"]}}, path
    resp = client.get(f"{SECURE}?f=json&token=not-a-token")
    assert resp.get_json() == {"error": {"code": 498, "message": "Invalid Token",
                                         "details": ["the token's signature does not verify"]}}
    resp = client.get(f"{SECURE}?f=json&token={token_for(client, 'bob')}")
    assert resp.get_json() == {"error": {
        "code": 403, "messageCode": "GWM_0003",
        "message": "You do not have permissions to access this resource or perform this "
                   "operation.", "details": []}}
    # f=html: the error page; f=image: JSON
    assert "499" in client.get(f"{SECURE}/export?bbox=0,0,1,1&f=html").get_data(as_text=True)
    assert error_of(client.get(f"{SECURE}/export?bbox=0,0,1,1&f=image"))["code"] == 499


def test_token_as_parameter_form_field_or_header(client):
    token = token_for(client, "alice")
    ok = client.get(f"{SECURE}/export?{EXPORT_ARGS}&token={token}").get_json()
    assert ok["width"] == 64 and "href" in ok
    assert client.get(f"{SECURE}/export?{EXPORT_ARGS}&TOKEN={token}").get_json()["width"] == 64
    resp = client.post(f"{SECURE}/export", data={"bbox": "-180,-90,180,90", "size": "64,32",
                                                 "f": "json", "token": token})
    assert resp.get_json()["width"] == 64
    for header in ("X-Esri-Authorization", "Authorization"):
        resp = client.get(f"{SECURE}/export?{EXPORT_ARGS}",
                          headers={header: f"Bearer {token}"})
        assert resp.get_json()["width"] == 64, header
    # role-based: alice is an analyst, bob is not
    assert "error" not in client.get(f"{TEAM}?f=json&token={token}").get_json()
    bob = token_for(client, "bob")
    assert error_of(client.get(f"{TEAM}?f=json&token={bob}"))["code"] == 403
    # public services need nothing and ignore tokens, even broken ones
    assert client.get(f"{OPEN}/export?{EXPORT_ARGS}").get_json()["width"] == 64
    assert client.get(f"{OPEN}?f=json&token=garbage").get_json()["mapName"]


def test_tokens_survive_only_with_the_same_secret_and_password(tmp_path, users_file, client):
    token = token_for(client, "alice")
    other = create_app(make_settings(tmp_path / "a", users_file)).test_client()
    assert "error" not in other.get(f"{SECURE}?f=json&token={token}").get_json()  # any worker
    changed = tmp_path / "users.json"
    doc = json.loads(users_file.read_text())
    doc["users"]["alice"]["password"] = hash_password("new password")
    changed.write_text(json.dumps(doc))
    moved = create_app(make_settings(tmp_path / "c", changed)).test_client()
    resp = moved.get(f"{SECURE}?f=json&token={token}")
    assert error_of(resp)["code"] == 498 and "new password" in error_of(resp)["details"][0]
    settings = make_settings(tmp_path / "d", users_file)
    other_secret = create_app(Settings(**{**settings.__dict__, "secret": "another"}))
    resp = other_secret.test_client().get(f"{SECURE}?f=json&token={token}")
    assert error_of(resp)["code"] == 498


# --- catalog, info --------------------------------------------------------------------------

def test_catalog_lists_only_what_the_caller_may_see(client):
    def listing(token: str | None = None, folder: str = "") -> dict:
        q = "f=json" + (f"&token={token}" if token else "")
        return client.get(f"/arcgis/rest/services{folder}?{q}").get_json()

    anonymous = listing()
    assert anonymous["folders"] == [] and [s["name"] for s in anonymous["services"]] == ["Open"]
    alice = listing(token_for(client, "alice"))
    assert alice["folders"] == ["Secure"]
    assert [s["name"] for s in alice["services"]] == ["Open", "Team"]
    assert [s["name"] for s in listing(token_for(client, "alice"), "/Secure")["services"]] == [
        "Secure/World"]
    bob = listing(token_for(client, "bob"))
    assert bob["folders"] == [] and [s["name"] for s in bob["services"]] == ["Open"]
    assert listing(folder="/Secure")["error"]["code"] == 404  # hidden, as if absent
    assert listing("expired-or-garbage")["error"]["code"] == 498


def test_info_advertises_token_security(client):
    auth = client.get("/arcgis/rest/info?f=json").get_json()["authInfo"]
    assert auth == {"isTokenBasedSecurity": True,
                    "tokenServicesUrl": "http://localhost/arcgis/tokens/",
                    "shortLivedTokenValidity": 60}


def test_public_server_stays_public_without_configuration(app):
    plain = app.test_client()
    assert plain.get("/arcgis/rest/info?f=json").get_json()["authInfo"] == {
        "isTokenBasedSecurity": False}
    assert error_of(plain.post("/arcgis/tokens/generateToken",
                               data={"username": "a", "password": "b"}))["code"] == 400
    resp = plain.get("/arcgis/rest/services/World/MapServer?f=json",
                     headers={"Origin": "https://anywhere.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_access_block_is_validated_at_load(tmp_path):
    for access, field in (({"users": "alice"}, "access.users"),
                          ({"users": [""]}, "access.users[0]"),
                          ({"users": [], "roles": []}, "access"),
                          ({"groups": ["x"]}, "access.groups"), ("alice", "access")):
        root = tmp_path / field.replace("[", "_").replace("]", "_") / str(id(access))
        root.mkdir(parents=True)
        (root / "Bad.json").write_text(json.dumps({**WORLD_DEF, "access": access}))
        catalog = load_catalog([root], PROJECT_ROOT / "data")
        assert "Bad" not in catalog.services
        assert len(catalog.problems) == 1 and f"Bad.json: {field}: " in catalog.problems[0], \
            catalog.problems


# --- /v1 ------------------------------------------------------------------------------------

OPS = "/v1/projects/p/operations"


def test_batch_api_needs_a_bearer_token_once_security_is_configured(client):
    resp = client.get(OPS)
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.get_json()["error"]["status"] == "UNAUTHENTICATED"
    resp = client.get(OPS, headers={"Authorization": "Bearer nonsense"})
    assert resp.status_code == 401 and "invalid" in resp.get_json()["error"]["message"]
    for bearer in ("key-1", token_for(client, "bob")):
        resp = client.get(OPS, headers={"Authorization": f"Bearer {bearer}"})
        assert resp.status_code == 200 and "operations" in resp.get_json(), resp.get_json()
    # the token query parameter works too (same tokens as the map services)
    assert client.get(f"{OPS}?token={token_for(client, 'bob')}").status_code == 200


def test_batch_exports_of_secured_services_need_access_to_them(client):
    body = {"expression": {"result": "0", "values": {"0": {"functionInvocationValue": {
        "functionName": "Image.load",
        "arguments": {"id": {"constantValue": "Secure/World"}}}}}},
        "grid": {"crsCode": "EPSG:4326", "affineTransform": {
            "scaleX": 1, "shearX": 0, "translateX": -180, "shearY": 0, "scaleY": -1,
            "translateY": 90}, "dimensions": {"width": 36, "height": 18}},
        "fileExportOptions": {"cloudStorageDestination": {"bucket": "exports",
                                                          "filenamePrefix": "x"}}}
    resp = client.post("/v1/projects/p/image:export", json=body,
                       headers={"Authorization": f"Bearer {token_for(client, 'bob')}"})
    assert resp.status_code == 403 and resp.get_json()["error"]["status"] == "PERMISSION_DENIED"
    assert "Secure/World" in resp.get_json()["error"]["message"]
    resp = client.post("/v1/projects/p/image:export", json=body,
                       headers={"Authorization": f"Bearer {token_for(client, 'alice')}"})
    assert resp.status_code == 200 and resp.get_json()["name"], resp.get_json()


def test_batch_api_roles_and_off_switch(tmp_path, users_file):
    app = create_app(make_settings(tmp_path / "roles", users_file, jobs_roles=("batch",)))
    install(app, JobConfig(db_path=tmp_path / "j.sqlite", bucket_root=tmp_path / "b",
                           dispatch=False))
    c = app.test_client()
    assert c.get(OPS, headers={"Authorization": f"Bearer {token_for(c, 'carol')}"}
                 ).status_code == 200
    resp = c.get(OPS, headers={"Authorization": f"Bearer {token_for(c, 'alice')}"})
    assert resp.status_code == 403 and resp.get_json()["error"]["status"] == "PERMISSION_DENIED"
    assert c.get(OPS, headers={"Authorization": "Bearer key-1"}).status_code == 200
    off = create_app(make_settings(tmp_path / "off", None, jobs_api=False)).test_client()
    resp = off.get(OPS, headers={"Authorization": "Bearer key-1"})
    assert resp.status_code == 404 and resp.get_json()["error"]["status"] == "NOT_FOUND"
    assert off.post("/v1/projects/p/image:export", json={}).status_code == 404


# --- CORS -----------------------------------------------------------------------------------

def test_cors_per_resource(client):
    evil = {"Origin": "https://evil.example"}
    good = {"Origin": APP_ORIGIN}
    token = token_for(client, "alice")
    # public: anyone
    assert client.get(f"{OPEN}?f=json", headers=evil).headers[
        "Access-Control-Allow-Origin"] == "*"
    # secured: only the configured origin, never *
    resp = client.get(f"{SECURE}?f=json&token={token}", headers=good)
    assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Origin" in resp.headers["Vary"]
    resp = client.get(f"{SECURE}?f=json&token={token}", headers=evil)
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Origin" not in client.get(f"{SECURE}?f=json",
                                                           headers=evil).headers
    # preflights (no view runs): the same rule, with the token header allowed
    pre = {"Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "x-esri-authorization"}
    resp = client.options(f"{SECURE}/export", headers={**good, **pre})
    assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "X-Esri-Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in client.options(
        f"{SECURE}/export", headers={**evil, **pre}).headers
    assert client.options(f"{OPEN}/export", headers={**evil, **pre}).headers[
        "Access-Control-Allow-Origin"] == "*"
    # /v1 and token generation: configured origins only
    for path in (OPS, "/arcgis/tokens/generateToken"):
        assert "Access-Control-Allow-Origin" not in client.options(
            path, headers={**evil, **pre}).headers, path
        assert client.options(path, headers={**good, **pre}).headers[
            "Access-Control-Allow-Origin"] == APP_ORIGIN, path
    # a secured tile is never cached publicly
    resp = client.get(f"{SECURE}/tile/0/0/0?token={token}")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    assert "public" not in resp.headers["Cache-Control"]
    assert "private" in resp.headers["Cache-Control"]


# --- long URLs, :wait, 404, health ----------------------------------------------------------

def test_long_urls_up_to_16_kb_then_414_json(client):
    head = f"{OPEN}?f=json&pad="
    resp = client.get(head + "a" * (16384 - len(head)))
    assert resp.status_code == 200 and resp.get_json()["mapName"]
    resp = client.get(head + "a" * (16385 - len(head)))
    assert resp.status_code == 414 and resp.mimetype == "application/json"
    error = error_of(resp)
    assert error["code"] == 414 and error["message"] == "Request-URI Too Long"
    assert "16385" in error["details"][0] and "POST" in error["details"][0]
    # an ArcGIS client's long GET: a dynamicLayers export of about 12 KB
    dyn = [{"id": 1, "source": {"type": "mapLayer", "mapLayerId": 1},
            "definitionExpression": "pop_est > " + " + ".join(["0"] * 1500)}]
    query = f"{EXPORT_ARGS}&dynamicLayers={quote(json.dumps(dyn))}"
    assert 8192 < len(f"{OPEN}/export?{query}") < 16384
    resp = client.get(f"{OPEN}/export?{query}")
    assert resp.status_code == 200 and resp.get_json().get("error", {}).get("code") != 414


def test_wait_returns_at_once_when_no_wait_slot_is_free(tmp_path):
    def run(slots: int) -> tuple[float, dict]:
        app = create_app(make_settings(tmp_path / f"w{slots}", None, wait_slots=slots))
        svc = install(app, JobConfig(db_path=tmp_path / f"w{slots}.sqlite",
                                     bucket_root=tmp_path / "b", dispatch=False))
        c = app.test_client()
        auth = {"Authorization": "Bearer key-1"}
        op = c.post("/v1/projects/p/image:export", headers=auth, json={
            "expression": {"result": "0", "values": {"0": {"functionInvocationValue": {
                "functionName": "Image.load",
                "arguments": {"id": {"constantValue": "Open"}}}}}},
            "fileExportOptions": {"cloudStorageDestination": {"bucket": "waits",
                                                              "filenamePrefix": "w"}}})
        assert op.status_code == 200, op.get_json()
        started = time.monotonic()
        resp = c.post(f"/v1/{op.get_json()['name']}:wait", headers=auth,
                      json={"timeout": "1.5s"})
        svc.close()
        return time.monotonic() - started, resp.get_json()

    waited, body = run(1)  # a slot: the wait blocks until its timeout (nothing dispatches)
    assert waited >= 1.4 and body["done"] is False
    waited, body = run(0)  # no slot (sync workers): the current state at once
    assert waited < 0.5 and body["done"] is False and body["name"]
    with wait_slot(1) as first, wait_slot(1) as second:
        assert first is True and second is False
    with wait_slot(1) as again:
        assert again is True


def test_unknown_paths_outside_the_rest_api_are_http_404(client):
    for path in ("/nope", "/wp-login.php", "/arcgis/nope", "/static/../../etc/passwd"):
        resp = client.get(path)
        assert resp.status_code == 404 and resp.mimetype == "application/json", path
        assert resp.get_json() == {"error": {"code": 404, "message": "Not Found",
                                             "details": []}}
    resp = client.get("/v2/projects/p/operations")  # not an API version: 404 before any auth
    assert resp.status_code == 404 and resp.get_json()["error"]["status"] == "NOT_FOUND"
    # inside /arcgis/rest the ArcGIS convention stays (HTTP 200, the code in the body)
    resp = client.get("/arcgis/rest/services/Nope/MapServer?f=json")
    assert resp.status_code == 200 and error_of(resp)["code"] == 404


def test_health_check_ok_then_503_when_the_store_or_catalog_breaks(tmp_path):
    app = create_app(make_settings(tmp_path / "h", None))
    db = tmp_path / "health" / "jobs.sqlite"
    svc = install(app, JobConfig(db_path=db, bucket_root=tmp_path / "b", dispatch=False))
    c = app.test_client()
    resp = c.get("/arcgis/rest/info/healthCheck?f=json")
    assert resp.status_code == 200 and resp.get_json() == {"success": True}
    svc.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    resp = c.get("/arcgis/rest/info/healthCheck")
    body = resp.get_json()
    assert resp.status_code == 503 and body["success"] is False
    assert body["error"]["code"] == 503 and body["error"]["details"][0].startswith(
        "operation store:"), body
    assert str(tmp_path) not in resp.get_data(as_text=True)
    # no service loaded at all
    empty = tmp_path / "empty"
    empty.mkdir()
    bare = create_app(Settings(service_dirs=(empty,), data_dir=PROJECT_ROOT / "data",
                               output_dir=tmp_path / "o", tile_cache_dir=tmp_path / "t",
                               jobs_api=False))
    resp = bare.test_client().get("/arcgis/rest/info/healthCheck")
    assert resp.status_code == 503
    assert resp.get_json()["error"]["details"] == ["catalog: no service is loaded"]


def test_users_cli_hashes_and_adds(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert users_cli(["hash"]) == 0
    assert capsys.readouterr().out.startswith("$argon2id$")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    path = tmp_path / "users.json"
    assert users_cli(["add", str(path), "dora", "--role", "analysts"]) == 0
    from mapserver.security.users import UserStore

    store = UserStore.load(path)
    assert store.authenticate("dora", "s3cret").roles == {"analysts"}
    assert store.authenticate("dora", "wrong") is None
