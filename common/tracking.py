"""Where MLflow lives, by configuration alone.

ml.tracking_uri null (the embedded default): a sqlite database and an artifact folder under the
lake's state/ — no server. Otherwise the URI as given: http://127.0.0.1:5000 for `make
mlflow-up`, `databricks` on Databricks. The registry follows the tracking URI unless
ml.registry_uri says otherwise (`databricks-uc` for Unity Catalog).
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from common import paths, tables
from common.config import Config
from common.errors import ConfigError, TrackingError

CHAMPION = "champion"
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def embedded_store(cfg: Config) -> tuple[str, str]:
    """(tracking URI, artifact folder) of the embedded default: under the lake's state/, or in
    ml.embedded_dir (a local folder: sqlite cannot live in S3)."""
    root = tables.lake_root(cfg)
    folder = cfg["ml.embedded_dir"]
    if not folder and not paths.opens_as_files(root):
        raise ConfigError(f"lake.root {root} is not a local folder: set ml.embedded_dir to a local folder for "
                          "the embedded store, or ml.tracking_uri to an MLflow server (or databricks)")
    folder = os.path.abspath(folder) if folder else paths.join(root, "state", "mlflow")
    os.makedirs(folder, exist_ok=True)
    return f"sqlite:///{os.path.join(folder, 'mlflow.db')}", os.path.join(folder, "artifacts")


def connect(cfg: Config) -> MlflowClient:
    """Point MLflow at the configured store and experiment; the client for registry calls."""
    uri, artifacts = (cfg["ml.tracking_uri"], None) if cfg["ml.tracking_uri"] else embedded_store(cfg)
    registry = cfg["ml.registry_uri"] or uri
    if uri.startswith(("http://", "https://")):
        probe(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)
    if mlflow.get_experiment_by_name(cfg["ml.experiment"]) is None:
        location = f"file://{artifacts}" if artifacts else None
        mlflow.create_experiment(cfg["ml.experiment"], artifact_location=location)
    mlflow.set_experiment(cfg["ml.experiment"])
    return MlflowClient(tracking_uri=uri, registry_uri=registry)


def probe(uri: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds when no server answers at uri: MLflow's own client retries for minutes."""
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass  # something answered (an auth proxy, an older server): let MLflow talk to it
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(f"no MLflow server answers at {uri} ({reason}): start one (`make mlflow-up`), "
                            "or unset ml.tracking_uri for the embedded store") from None


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The model version holding the champion alias; None when the model or the alias does not
    exist yet. Any other registry failure propagates: it must not read as 'no champion'."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code in _NOT_FOUND:
            return None
        raise
    version = model.aliases.get(CHAMPION)
    return None if version is None else client.get_model_version(name, str(version))
