"""Lake locations (common/paths.py): each kind, normalised and joined, and what the modules that ask it
(config, tables, raw zone, MLflow's embedded store, the session's S3 settings) answer for each. No Spark."""
from __future__ import annotations

import pytest

from common import paths, raw_zone, session, tables, tracking
from common.catalogue import SILVER_RATINGS
from common.config import load_config
from common.errors import ConfigError
from common.paths import Kind

NO_ENV: dict[str, str] = {}
ABFSS = "abfss://box@account.dfs.core.windows.net/lake"
RAW_ZONE_REFUSED = ("lake.root '{}': the raw zone lives in a local folder, a Unity Catalog volume "
                    "(/Volumes/<catalog>/<schema>/<volume>/..., which Python opens as files, unlike dbfs:/) "
                    "or under s3a://bucket/prefix")
NO_EMBEDDED_STORE = ("lake.root {} is not a local folder: set ml.embedded_dir to a local folder for the embedded "
                     "store, or ml.tracking_uri to an MLflow server (or databricks)")


def config(root: str, *overrides: str):
    return load_config("test", [f"lake.root={root}", *overrides], environ=NO_ENV)


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    return str(tmp_path)


# Each kind: (location, kind, its normal form, scheme, Python opens it, it is S3, Spark's S3).
KINDS = [
    ("/data/lake", Kind.FOLDER, "/data/lake", "", True, False, False),
    ("/data/lake/", Kind.FOLDER, "/data/lake", "", True, False, False),
    ("/", Kind.FOLDER, "/", "", True, False, False),
    ("x:y/lake", Kind.FOLDER, "{cwd}/x:y/lake", "", True, False, False),  # a colon is no scheme
    ("/Volumes/main/lakejobs/lake", Kind.VOLUME, "/Volumes/main/lakejobs/lake", "", True, False, False),
    ("/Volumes/main/lakejobs/lake/", Kind.VOLUME, "/Volumes/main/lakejobs/lake", "", True, False, False),
    ("/Volumes", Kind.FOLDER, "/Volumes", "", True, False, False),   # no volume named
    ("s3a://b/p", Kind.S3, "s3a://b/p", "s3a", False, True, True),
    ("s3a://b/p/", Kind.S3, "s3a://b/p", "s3a", False, True, True),
    ("s3a://b", Kind.S3, "s3a://b", "s3a", False, True, True),
    ("s3://b/p", Kind.S3, "s3://b/p", "s3", False, True, False),
    ("dbfs:/lake/", Kind.DBFS, "dbfs:/lake", "dbfs", False, False, False),
    ("dbfs:///lake", Kind.DBFS, "dbfs:///lake", "dbfs", False, False, False),
    (ABFSS + "//", Kind.REMOTE, ABFSS, "abfss", False, False, False),
    ("gs://b/lake", Kind.REMOTE, "gs://b/lake", "gs", False, False, False),
    ("S3A://b/p", Kind.REMOTE, "S3A://b/p", "S3A", False, False, False),  # case-sensitive, as it always was
]


@pytest.mark.parametrize("location, kind, normal, scheme, opens, s3, s3a", KINDS)
def test_each_kind_of_location(cwd, location, kind, normal, scheme, opens, s3, s3a):
    assert paths.kind(location) is kind
    assert paths.normalise(location) == normal.format(cwd=cwd)
    assert paths.scheme(location) == scheme
    assert paths.opens_as_files(location) is opens
    assert paths.is_s3(location) is s3
    assert paths.is_s3a(location) is s3a
    assert paths.python_reaches(location) is (opens or s3)


@pytest.mark.parametrize("relative", ["lake", "lake/", "./a/../lake", "a/../lake//"])
def test_a_relative_folder_is_made_absolute_against_the_working_directory(cwd, relative):
    assert paths.kind(relative) is Kind.FOLDER
    assert paths.normalise(relative) == f"{cwd}/lake"


def test_a_relative_folder_under_volumes_is_a_volume_from_the_root(monkeypatch):
    monkeypatch.chdir("/")
    assert paths.kind("Volumes/main/lakejobs/lake") is Kind.VOLUME


@pytest.mark.parametrize("base, parts, joined", [
    ("/data/lake", ("silver", "ratings"), "/data/lake/silver/ratings"),
    ("/data/lake/", ("silver",), "/data/lake/silver"),
    ("/", ("bronze", "ratings"), "/bronze/ratings"),
    ("s3a://b/p", ("landing", "movielens", "x.csv"), "s3a://b/p/landing/movielens/x.csv"),
    ("s3a://b/p/", ("state",), "s3a://b/p/state"),
    ("s3a://b", ("state",), "s3a://b/state"),
    ("dbfs:/lake", ("state", "checkpoints"), "dbfs:/lake/state/checkpoints"),
    ("/Volumes/main/lakejobs/lake", ("landing",), "/Volumes/main/lakejobs/lake/landing"),
    (ABFSS, ("gold", "daily_ratings"), ABFSS + "/gold/daily_ratings"),
    ("/data/lake", (), "/data/lake"),
])
def test_join(base, parts, joined):
    assert paths.join(base, *parts) == joined


@pytest.mark.parametrize("uri, bucket, key", [
    ("s3a://b/lake/x.csv", "b", "lake/x.csv"),
    ("s3a://b/lake/", "b", "lake/"),
    ("s3a://b", "b", ""),
    ("s3://b/k", "b", "k"),
])
def test_split_s3(uri, bucket, key):
    assert paths.split_s3(uri) == (bucket, key)


@pytest.mark.parametrize("uri", ["s3a://", "s3a:///key", "/data/lake", "dbfs:/lake", "gs://b/k"])
def test_split_s3_refuses_what_names_no_bucket(uri):
    with pytest.raises(ConfigError) as e:
        paths.split_s3(uri)
    assert str(e.value) == f"'{uri}' is not an S3 location: expected s3a://bucket/prefix"


# What the modules that ask paths answer, as before it existed.

def test_s3_without_a_is_the_config_error_it_was():
    with pytest.raises(ConfigError) as e:
        config("s3://b/lake")
    assert str(e.value) == "config key 'lake.root' must use the s3a:// scheme (Spark's S3 connector), got 's3://b/lake'"


@pytest.mark.parametrize("root, lake_root", [
    ("lake/", "{cwd}/lake"),
    ("/data/lake/", "/data/lake"),
    ("/Volumes/main/lakejobs/lake/", "/Volumes/main/lakejobs/lake"),
    ("s3a://b/p/", "s3a://b/p"),
    ("dbfs:/lake/", "dbfs:/lake"),
    (ABFSS + "/", ABFSS),
])
def test_table_locations_under_each_root(cwd, root, lake_root):
    cfg = config(root)
    assert tables.lake_root(cfg) == lake_root.format(cwd=cwd)
    assert tables.location(cfg, SILVER_RATINGS.name) == lake_root.format(cwd=cwd) + "/silver/ratings"


@pytest.mark.parametrize("root, landing", [
    ("lake", "{cwd}/lake/landing/movielens"),
    ("/Volumes/main/lakejobs/lake/", "/Volumes/main/lakejobs/lake/landing/movielens"),
    ("s3a://b/p/", "s3a://b/p/landing/movielens"),
])
def test_the_raw_zone_lives_where_python_reaches(cwd, root, landing):
    assert raw_zone.dataset_dir(config(root)) == landing.format(cwd=cwd)


@pytest.mark.parametrize("root, shown", [("dbfs:/lake/", "dbfs:/lake"), (ABFSS, ABFSS), ("S3A://b/p", "S3A://b/p")])
def test_the_raw_zone_refuses_a_root_only_spark_reaches(root, shown):
    with pytest.raises(ConfigError) as e:
        raw_zone.dataset_dir(config(root))
    assert str(e.value) == RAW_ZONE_REFUSED.format(shown)


@pytest.mark.parametrize("root", ["dbfs:/lake", ABFSS])
def test_no_tables_are_listed_from_python_under_a_root_only_spark_reaches(root):
    assert tables.known_tables(config(root)) == []


def test_the_embedded_mlflow_store_lives_under_a_local_lake(tmp_path):
    uri, artifacts = tracking.embedded_store(config(f"{tmp_path}/lake/"))
    assert uri == f"sqlite:///{tmp_path}/lake/state/mlflow/mlflow.db"
    assert artifacts == f"{tmp_path}/lake/state/mlflow/artifacts"


@pytest.mark.parametrize("root, shown", [("s3a://b/p/", "s3a://b/p"), ("dbfs:/lake", "dbfs:/lake"), (ABFSS, ABFSS)])
def test_the_embedded_mlflow_store_needs_a_local_folder(root, shown):
    with pytest.raises(ConfigError) as e:
        tracking.embedded_store(config(root))
    assert str(e.value) == NO_EMBEDDED_STORE.format(shown)


def test_the_embedded_mlflow_store_goes_to_embedded_dir_beside_an_s3_lake(cwd):
    uri, artifacts = tracking.embedded_store(config("s3a://b/p", "ml.embedded_dir=mlflow"))
    assert (uri, artifacts) == (f"sqlite:///{cwd}/mlflow/mlflow.db", f"{cwd}/mlflow/artifacts")


@pytest.mark.parametrize("root, has_settings", [
    ("s3a://b/p", True), ("/data/lake", False), ("dbfs:/lake", False), (ABFSS, False), ("S3A://b/p", False)])
def test_hadoop_aws_settings_only_for_an_s3a_lake(root, has_settings):
    settings = session.s3a_settings(config(root, "s3.endpoint=https://s3.example.test"))
    expected = {"fs.s3a.aws.credentials.provider": "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
                "fs.s3a.endpoint.region": "us-east-1", "fs.s3a.path.style.access": "false",
                "fs.s3a.endpoint": "https://s3.example.test", "fs.s3a.connection.ssl.enabled": "true"}
    assert settings == (expected if has_settings else {})
