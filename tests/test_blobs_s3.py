"""The S3 blob store (``s3://bucket/prefix`` on moto's S3 server) behaves as the local folder
store, refuses malformed locations at start-up, and says clearly when it cannot be reached.
The tile cache on it: a hit across "hosts"; a cache that does not answer renders uncached."""

from __future__ import annotations

import pytest

from mapserver.blobs import LocalBlobs, S3Blobs, StoreUnavailable, open_blobs
from mapserver.maps.tile_cache import TileCache
from mapserver.settings import Settings
from tests.shared_state_helpers import free_port, moto_server, s3


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        s3(url).create_bucket(Bucket="blobs")
        yield url


def _scenario(store) -> list:
    """Every Blobs call, with what a caller observes."""
    out = []
    store.put("World/1/0/1.png", b"a")
    store.put("World/1/0/2.png", b"b")
    store.put("World2/0/0/0.png", b"c")
    store.put("top.png", b"d")
    store.put("World/1/0/1.png", b"a2")  # overwrite
    out.append(store.get("World/1/0/1.png"))
    out.append(store.get("World/9/9/9.png"))
    out.append(store.get("World"))  # a "folder" is not an object
    out.append(sorted(k for k, _ in store.keys()))
    out.append(sorted(k for k, _ in store.keys("World")))  # not World2
    out.append(sorted(k for k, _ in store.keys("World/")))
    out.append(sorted(k for k, _ in store.keys("top.png")))
    out.append(sorted(k for k, _ in store.keys("nothing")))
    out.append(all(isinstance(t, float) and t > 1.6e9 for _, t in store.keys()))
    for bad in ("", "/", "../x", "a/../../b", "."):
        with pytest.raises(ValueError):
            store.put(bad, b"x")
    out.append(store.delete_prefix("World"))
    out.append(sorted(k for k, _ in store.keys()))
    store.delete("top.png")
    store.delete("top.png")  # deleting what is gone is fine
    out.append(sorted(k for k, _ in store.keys()))
    out.append(store.problem())
    return out


def test_s3_store_answers_as_the_local_store(tmp_path, endpoint):
    local = _scenario(LocalBlobs(tmp_path / "blobs"))
    remote = _scenario(open_blobs("s3://blobs/a/prefix/", endpoint))
    assert remote == local
    assert local[3] == ["World/1/0/1.png", "World/1/0/2.png", "World2/0/0/0.png", "top.png"]
    assert local[4] == ["World/1/0/1.png", "World/1/0/2.png"]
    assert local[-4:] == [2, ["World2/0/0/0.png", "top.png"], ["World2/0/0/0.png"], None]


def test_prefixes_of_one_bucket_are_separate_stores(endpoint):
    a, b = S3Blobs("s3://blobs/one", endpoint), S3Blobs("s3://blobs/one-more", endpoint)
    a.put("k", b"1")
    b.put("k", b"2")
    assert (a.get("k"), b.get("k")) == (b"1", b"2")
    assert [k for k, _ in a.keys()] == ["k"]
    objects = s3(endpoint).list_objects_v2(Bucket="blobs", Prefix="one")["Contents"]
    assert sorted(o["Key"] for o in objects) == ["one-more/k", "one/k"]
    assert a.delete_prefix("") == 1 and b.get("k") == b"2"


@pytest.mark.parametrize("location", ["s3://", "s3://UPPER/x", "s3://ab", "s3://b_c/x",
                                      "s3://bucket/../x", "s3://bucket/a/./b"])
def test_malformed_locations_stop_the_start_up_with_the_reason(location):
    with pytest.raises(ValueError, match="s3://"):
        Settings.from_env({"MAPSERVER_OUTPUT": location})
    with pytest.raises(ValueError, match="s3://"):
        Settings.from_env({"MAPSERVER_TILE_CACHE": location})


def test_settings_keep_folders_as_paths_and_s3_locations_as_strings(tmp_path):
    s = Settings.from_env({"MAPSERVER_OUTPUT": "s3://outs/p", "MAPSERVER_TILE_CACHE":
                           str(tmp_path), "MAPSERVER_S3_ENDPOINT": "http://127.0.0.1:9"})
    assert s.output_dir == "s3://outs/p" and s.tile_cache_dir == tmp_path
    assert s.s3_endpoint == "http://127.0.0.1:9"


def test_unreachable_endpoint_and_missing_bucket_are_named(endpoint):
    down = S3Blobs("s3://blobs/x", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable) as err:
        down.get("k")
    assert err.value.code == 503
    assert err.value.message == "s3://blobs/x: cannot read k: the endpoint does not answer"
    with pytest.raises(StoreUnavailable, match="cannot write k: the endpoint does not answer"):
        down.put("k", b"x")
    assert down.problem() == "object store s3://blobs/x: the endpoint does not answer"
    missing = S3Blobs("s3://no-such-bucket", endpoint)
    assert missing.problem() == "object store s3://no-such-bucket: the bucket does not exist"
    with pytest.raises(StoreUnavailable, match="the bucket does not exist"):
        missing.get("k")  # not a cache miss: the store is misconfigured


def test_tile_cache_on_s3_is_shared_and_a_dead_one_is_a_miss(endpoint):
    host_a = TileCache("s3://blobs/tiles", endpoint)
    host_b = TileCache("s3://blobs/tiles", endpoint)
    host_a.put("World/abc/1/0/1.png", b"png")
    assert host_b.get("World/abc/1/0/1.png") == b"png"
    assert host_b.truncate("World") == 1 and host_a.get("World/abc/1/0/1.png") is None
    dead = TileCache("s3://blobs/tiles", f"http://127.0.0.1:{free_port()}")
    assert dead.get("World/abc/1/0/1.png") is None  # a miss: the tile is drawn instead
    dead.put("World/abc/1/0/1.png", b"png")  # skipped, logged; no error for the request
    with pytest.raises(StoreUnavailable):
        dead.truncate("World")  # asked for explicitly: an error


def test_tiles_render_from_and_into_an_s3_cache(tmp_path, endpoint):
    """/tile on two apps sharing the bucket: B answers A's tile from the cache (same bytes,
    no new object); with the cache unreachable tiles are still drawn."""
    from mapserver.app import create_app
    from mapserver.settings import PROJECT_ROOT

    s3(endpoint).create_bucket(Bucket="tiles")

    def app(cache_endpoint: str):
        return create_app(Settings(service_dirs=(PROJECT_ROOT / "services",),
                                   data_dir=PROJECT_ROOT / "data", output_dir=tmp_path / "o",
                                   tile_cache_dir="s3://tiles/cache", s3_endpoint=cache_endpoint,
                                   jobs_api=False)).test_client()

    tile = "/arcgis/rest/services/World/MapServer/tile/2/1/1"
    host_a, host_b = app(endpoint), app(endpoint)
    first = host_a.get(tile)
    assert first.status_code == 200 and first.mimetype == "image/png"
    objects = s3(endpoint).list_objects_v2(Bucket="tiles")["Contents"]
    assert objects and all(o["Key"].startswith("cache/World/") for o in objects)
    again = host_b.get(tile)
    assert again.data == first.data
    assert s3(endpoint).list_objects_v2(Bucket="tiles")["Contents"] == objects  # no re-render
    # proof that B answers from the bucket: replace the cached object with other bytes (a
    # neighbouring tile, from the same metatile); B serves exactly those
    key = next(o["Key"] for o in objects if o["Key"].endswith("/2/1/1.png"))
    marker = host_b.get("/arcgis/rest/services/World/MapServer/tile/2/1/2").data
    assert marker != first.data
    s3(endpoint).put_object(Bucket="tiles", Key=key, Body=marker)
    assert host_b.get(tile).data == marker
    dead = app(f"http://127.0.0.1:{free_port()}").get(tile)
    assert dead.status_code == 200 and dead.data == first.data
