"""Shared fixtures: the app on the bundled sample services, and image helpers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mapserver.app import create_app
from mapserver.settings import PROJECT_ROOT, Settings

FIXTURES = Path(__file__).parent / "fixtures"

# live-server, npm and Chromium fixtures for the browser tests (imported lazily)
pytest_plugins = ["browser_support"]


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(service_dirs=(PROJECT_ROOT / "services",), data_dir=PROJECT_ROOT / "data",
                    output_dir=tmp_path_factory.mktemp("output"),
                    tile_cache_dir=tmp_path_factory.mktemp("tiles"))


@pytest.fixture(scope="session")
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture()
def client(app):
    return app.test_client()


def decode(data: bytes) -> np.ndarray:
    """Decode image bytes to an RGBA uint8 array."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
