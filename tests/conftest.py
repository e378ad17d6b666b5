"""One SparkSession for the whole run (test overlay: local[2], 2 shuffle partitions, UI off),
and a fresh lake folder per test."""
from __future__ import annotations

import os

import pytest

from common.config import Config, load_config
from common.session import get_session

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MOVIELENS = os.path.abspath(os.path.join(REPO, "..", "shared", "data", "movielens"))


@pytest.fixture(scope="session")
def spark():
    session = get_session(load_config("test"))
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path) -> str:
    return str(tmp_path / "lake")


@pytest.fixture
def cfg(lake) -> Config:
    """Test config with its own lake; extend with cfg.with_overrides({...})."""
    return load_config("test", [f"lake.root={lake}"])
