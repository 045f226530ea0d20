"""QGIS's WMS provider against the live app (issue 12): QGIS 3.22 (Debian's ``python3-qgis``)
loads ``WMSServer`` as a ``wms`` raster layer, renders a box around China through its own map
renderer, and the picture must carry the World classes' colours where the app's own
``/export`` of the same box has them.

PyQGIS lives in the system Python (``/usr/bin/python3``), not in the test venv, so the QGIS
side is a script run in a subprocess (offscreen Qt, HOME/XDG in tmp_path). The requests QGIS
made are checked twice: as QGIS's network manager created them, and as the app's werkzeug
server logged them. A missing ``/usr/bin/python3`` or ``qgis.core`` FAILS (never skips): CI
installs ``python3-qgis qgis-providers`` (.ci/run).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from tests.conftest import decode

SYSTEM_PYTHON = "/usr/bin/python3"
WORLD = "/arcgis/rest/services/World/MapServer"
BOX = (70.0, 15.0, 130.0, 55.0)  # lon/lat, 0.1 degree pixels at 600 x 400
SIZE = (600, 400)
# World's classBreaks colours on pop_est (as tests/test_ogc_gdal.py; Mongolia away from its label)
POINTS = {"China": ((90.0, 33.0), (189, 0, 38)), "Russia": ((100.0, 52.0), (240, 59, 32)),
          "Mongolia": ((112.0, 46.0), (255, 255, 178)),
          "Bay of Bengal": ((88.0, 17.0), (255, 255, 255))}

SCRIPT = r'''
import json
import sys

from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsMapRendererSequentialJob,
                       QgsMapSettings, QgsNetworkAccessManager, QgsNetworkRequestParameters,
                       QgsProviderRegistry, QgsRasterLayer, QgsRectangle)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

url, out_png, out_json = sys.argv[1:4]
xmin, ymin, xmax, ymax, width, height = (float(v) for v in sys.argv[4:10])

app = QgsApplication([], False)
app.initQgis()
requests = []
# emitted on the main thread's manager for requests created in any thread (the overload
# taking QgsNetworkRequestParameters; the other one is the deprecated 3-argument form)
QgsNetworkAccessManager.instance().requestAboutToBeCreated[QgsNetworkRequestParameters].connect(
    lambda params: requests.append(params.request().url().toString()))

uri = f"crs=EPSG:4326&format=image/png&layers=1&styles=&url={url}"
layer = QgsRasterLayer(uri, "World", "wms")
result = {"valid": layer.isValid(), "requests": requests,
          "providers": QgsProviderRegistry.instance().providerList()}
if not layer.isValid():
    result["error"] = layer.error().summary()
    if layer.dataProvider() is not None:
        result["provider_error"] = layer.dataProvider().error().summary()
else:
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    settings.setExtent(QgsRectangle(xmin, ymin, xmax, ymax))
    settings.setOutputSize(QSize(int(width), int(height)))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    app.processEvents()  # deliver queued requestAboutToBeCreated signals
    result["render_errors"] = [f"{e.layerID}: {e.message}" for e in job.errors()]
    result["saved"] = job.renderedImage().save(out_png, "PNG")
    result["extent"] = settings.visibleExtent().toString()

with open(out_json, "w") as f:
    json.dump(result, f)
app.exitQgis()
'''


def run_qgis(tmp_path: Path, app_url: str) -> tuple[dict, np.ndarray]:
    assert os.path.exists(SYSTEM_PYTHON), (
        f"{SYSTEM_PYTHON} is missing: the QGIS test needs the system Python with python3-qgis")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PREFIX_PATH": "/usr",
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    for var in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
                "XDG_RUNTIME_DIR"):
        folder = tmp_path / var.lower()
        folder.mkdir(mode=0o700)
        env[var] = str(folder)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # the venv's, not the system's
        env.pop(var, None)
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True,
                           text=True, env=env, timeout=120)
    assert probe.returncode == 0, (
        "QGIS is not installed for /usr/bin/python3 (apt-get install python3-qgis "
        f"qgis-providers): {probe.stderr.strip()}")
    script = tmp_path / "render.py"
    script.write_text(SCRIPT)
    out_png, out_json = tmp_path / "qgis.png", tmp_path / "qgis.json"
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(script), f"{app_url}{WORLD}/WMSServer", str(out_png),
         str(out_json), *(str(v) for v in (*BOX, *SIZE))],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and out_json.exists(), (
        f"QGIS script failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    result = json.loads(out_json.read_text())
    assert result["valid"], f"QGIS found the WMS layer invalid: {result}\n{proc.stderr}"
    assert result["saved"] and not result["render_errors"], f"{result}\n{proc.stderr}"
    return result, decode(out_png.read_bytes())


def wms_requests(urls: list[str]) -> list[dict[str, str]]:
    """The query of every WMSServer URL, keys upper-cased."""
    return [{k.upper(): v for k, v in parse_qsl(urlsplit(u).query, keep_blank_values=True)}
            for u in urls if urlsplit(u).path.endswith(f"{WORLD}/WMSServer")]


def test_qgis_wms_provider_renders_the_world_service(app_url, client, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    result, image = run_qgis(tmp_path, app_url)

    # what QGIS asked for: the capabilities, then one GetMap of the box at the output size
    asked = wms_requests(result["requests"])
    kinds = [q.get("REQUEST", "").lower() for q in asked]
    assert "getcapabilities" in kinds and "getmap" in kinds, result["requests"]
    getmaps = [q for q in asked if q.get("REQUEST", "").lower() == "getmap"]
    assert all(q.get("LAYERS") == "1" for q in getmaps), getmaps
    # 1.3.0 (from the capabilities) with EPSG:4326's lat,lon axis order, at the output size
    assert (getmaps[-1]["VERSION"], getmaps[-1]["CRS"], getmaps[-1]["BBOX"],
            getmaps[-1]["WIDTH"], getmaps[-1]["HEIGHT"]) == (
        "1.3.0", "EPSG:4326", "15,70,55,130", str(SIZE[0]), str(SIZE[1])), getmaps
    # ... and the app served them (its werkzeug request log), all with 200
    served = [r.getMessage() for r in caplog.records if "/WMSServer?" in r.getMessage()]
    for kind in ("GetCapabilities", "GetMap"):
        hits = [m for m in served if f"REQUEST={kind}".lower() in m.lower()]
        assert hits, f"no {kind} reached the app: {served}"
        assert all('" 200 ' in m for m in hits), hits

    # the picture: the classes' colours where they are, and the app's own export of the box
    assert image.shape == (SIZE[1], SIZE[0], 4)
    xres = (BOX[2] - BOX[0]) / SIZE[0]
    yres = (BOX[3] - BOX[1]) / SIZE[1]

    def pixel(rgba: np.ndarray, lon: float, lat: float) -> tuple[int, ...]:
        return tuple(int(v) for v in rgba[int((BOX[3] - lat) / yres), int((lon - BOX[0]) / xres),
                                          :3])

    for name, ((lon, lat), colour) in POINTS.items():
        assert pixel(image, lon, lat) == colour, name
    # the app's export of the same box at the DPI QGIS asked for, transparent like the GetMap
    # QGIS sent, laid over QGIS's white background
    dpi = getmaps[-1].get("DPI", "96")
    bbox = ",".join(str(v) for v in BOX)
    export = client.get(f"{WORLD}/export?bbox={bbox}&bboxSR=4326&imageSR=4326"
                        f"&size={SIZE[0]},{SIZE[1]}&dpi={dpi}&format=png32&transparent=true"
                        "&f=image&layers=show:1")
    assert export.status_code == 200
    rgba = decode(export.data).astype(float)
    assert rgba.shape == image.shape
    alpha = rgba[..., 3:] / 255
    expected = np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    for name, ((lon, lat), colour) in POINTS.items():
        assert pixel(expected, lon, lat) == colour, name
    # pixel for pixel, up to QGIS's rounding where it blends a half-transparent edge pixel
    diff = np.abs(image[..., :3].astype(int) - expected.astype(int)).max(axis=-1)
    assert diff.max() <= 2 and (diff == 0).mean() > 0.999, (diff.max(), (diff == 0).mean())
