"""Where MLflow lives, by configuration alone.

ml.tracking_uri null (the embedded default): a sqlite database and an artifact folder under the
lake's state/ — no server. Otherwise the URI as given: http://127.0.0.1:5000 for `make
mlflow-up`, `databricks` on Databricks. The registry follows the tracking URI.
"""
from __future__ import annotations

import os

import mlflow
from mlflow.tracking import MlflowClient

from common import tables
from common.config import Config
from common.errors import ConfigError

CHAMPION = "champion"


def embedded_store(cfg: Config) -> tuple[str, str]:
    """(tracking URI, artifact folder) of the embedded default, under the lake's state/."""
    root = tables.lake_root(cfg)
    if "://" in root or root.startswith("dbfs:"):
        raise ConfigError(f"lake.root {root} is not a local folder: set ml.tracking_uri to an MLflow server "
                          "(or databricks) instead of the embedded sqlite store")
    folder = os.path.join(root, "state", "mlflow")
    os.makedirs(folder, exist_ok=True)
    return f"sqlite:///{os.path.join(folder, 'mlflow.db')}", os.path.join(folder, "artifacts")


def connect(cfg: Config) -> MlflowClient:
    """Point MLflow at the configured store and experiment; the client for registry calls."""
    uri, artifacts = (cfg["ml.tracking_uri"], None) if cfg["ml.tracking_uri"] else embedded_store(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(cfg["ml.experiment"]) is None:
        location = f"file://{artifacts}" if artifacts else None
        mlflow.create_experiment(cfg["ml.experiment"], artifact_location=location)
    mlflow.set_experiment(cfg["ml.experiment"])
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def champion(client: MlflowClient, name: str):
    """The model version holding the champion alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
