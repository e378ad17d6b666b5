"""Layered configuration: base ← overlay ← environment variables ← --conf, typed and validated."""
from __future__ import annotations

import pytest

from common.config import load_config
from common.errors import ConfigError

NO_ENV: dict[str, str] = {}  # never let the real environment leak into a test


def test_base_values_load():
    cfg = load_config("local", environ=NO_ENV)
    assert cfg["spark.shuffle_partitions"] == 8
    assert cfg["gold.bayes_min_votes"] == 10
    assert cfg["source.kind"] == "generator"
    assert cfg.env == "local"


def test_overlay_overrides_base():
    cfg = load_config("test", environ=NO_ENV)
    assert cfg["spark.shuffle_partitions"] == 2  # conf/test.yaml; base says 8
    assert cfg["generator.ratings"] == 5000      # conf/test.yaml; base says 100000
    assert cfg["generator.seed"] == 42           # not in the overlay: the base value stays


def test_environment_variable_overrides_overlay():
    cfg = load_config("test", environ={"LAKEJOBS__SPARK__SHUFFLE_PARTITIONS": "3"})
    assert cfg["spark.shuffle_partitions"] == 3


def test_environment_variables_without_the_prefix_are_ignored():
    cfg = load_config("test", environ={"SPARK__SHUFFLE_PARTITIONS": "3", "LAKEJOBS_SPARK": "x"})
    assert cfg["spark.shuffle_partitions"] == 2


def test_conf_override_wins_over_environment_variable():
    cfg = load_config("test", ["spark.shuffle_partitions=5"],
                      environ={"LAKEJOBS__SPARK__SHUFFLE_PARTITIONS": "3"})
    assert cfg["spark.shuffle_partitions"] == 5


@pytest.mark.parametrize("override, key, expected", [
    ("spark.shuffle_partitions=8", "spark.shuffle_partitions", 8),
    ("ledger.enabled=false", "ledger.enabled", False),
    ("ledger.enabled=true", "ledger.enabled", True),
    ("sensor.timeout_s=5", "sensor.timeout_s", 5),          # an int where a float is expected is fine
    ("spark.jar_groups=[delta, s3]", "spark.jar_groups", ["delta", "s3"]),
    ("lake.root=/data/lake", "lake.root", "/data/lake"),
])
def test_override_values_are_typed(override, key, expected):
    value = load_config("test", [override], environ=NO_ENV)[key]
    assert value == expected
    assert type(value) is type(expected)


def test_environment_variable_values_are_typed():
    cfg = load_config("test", environ={"LAKEJOBS__LEDGER__ENABLED": "false"})
    assert cfg["ledger.enabled"] is False


def test_unknown_key_names_it_and_suggests_the_close_match():
    with pytest.raises(ConfigError) as err:
        load_config("test", ["spark.shufle_partitions=3"], environ=NO_ENV)
    assert str(err.value) == ("unknown config key 'spark.shufle_partitions' from --conf spark.shufle_partitions=3 "
                              "(did you mean 'spark.shuffle_partitions'?)")


def test_unknown_key_from_environment_names_the_variable():
    with pytest.raises(ConfigError, match=r"unknown config key 'gold\.bayes_min_vote' from environment variable "
                                          r"LAKEJOBS__GOLD__BAYES_MIN_VOTE \(did you mean 'gold\.bayes_min_votes'\?\)"):
        load_config("test", environ={"LAKEJOBS__GOLD__BAYES_MIN_VOTE": "5"})


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        load_config("test", ["spark.shuffle_partitions=many"], environ=NO_ENV)
    assert str(err.value) == "config key 'spark.shuffle_partitions' must be int, got 'many'"


def test_an_int_is_not_a_bool():
    with pytest.raises(ConfigError) as err:
        load_config("test", ["ledger.enabled=1"], environ=NO_ENV)
    assert str(err.value) == "config key 'ledger.enabled' must be bool, got 1"


def test_enum_value_outside_the_allowed_set():
    with pytest.raises(ConfigError) as err:
        load_config("test", ["source.kind=ftp"], environ=NO_ENV)
    assert str(err.value) == "config key 'source.kind' must be one of generator, folder, url, got 'ftp'"


def test_non_positive_number_is_refused():
    with pytest.raises(ConfigError) as err:
        load_config("test", ["spark.shuffle_partitions=0"], environ=NO_ENV)
    assert str(err.value) == "config key 'spark.shuffle_partitions' must be a positive number, got 0"


def test_null_for_a_checked_number_is_a_config_error():
    # null skips the type check (any key may be null), so the range check must cope with None.
    with pytest.raises(ConfigError, match="stream.holdback_fraction"):
        load_config("test", ["stream.holdback_fraction=null"], environ=NO_ENV)


def test_unknown_environment():
    with pytest.raises(ConfigError) as err:
        load_config("prod", environ=NO_ENV)
    assert str(err.value) == "unknown environment 'prod'; valid: local, test, cluster, databricks, s3"


def test_free_form_spark_conf_key_is_accepted():
    cfg = load_config("test", ["spark.conf.spark.sql.foo=bar"], environ=NO_ENV)
    assert cfg["spark.conf"]["spark.sql.foo"] == "bar"
    assert cfg["spark.conf"]["spark.sql.session.timeZone"] == "UTC"  # the other entries stay


def test_conf_without_equals_is_refused():
    with pytest.raises(ConfigError) as err:
        load_config("test", ["spark.shuffle_partitions"], environ=NO_ENV)
    assert str(err.value) == "--conf expects key=value, got 'spark.shuffle_partitions'"


def test_with_overrides_replaces_a_value():
    cfg = load_config("test", environ=NO_ENV).with_overrides({"spark.shuffle_partitions": 4})
    assert cfg["spark.shuffle_partitions"] == 4
    assert cfg.env == "test"


def test_with_overrides_validates_types():
    cfg = load_config("test", environ=NO_ENV)
    with pytest.raises(ConfigError) as err:
        cfg.with_overrides({"spark.shuffle_partitions": "many"})
    assert str(err.value) == "config key 'spark.shuffle_partitions' must be int, got 'many'"


def test_with_overrides_validates_enums():
    cfg = load_config("test", environ=NO_ENV)
    with pytest.raises(ConfigError, match="config key 'source.kind' must be one of generator, folder, url"):
        cfg.with_overrides({"source.kind": "ftp"})


def test_with_overrides_refuses_unknown_keys():
    cfg = load_config("test", environ=NO_ENV)
    with pytest.raises(ConfigError) as err:
        cfg.with_overrides({"spark.shufle_partitions": 3})
    assert str(err.value) == ("unknown config key 'spark.shufle_partitions' from override "
                              "(did you mean 'spark.shuffle_partitions'?)")


def test_with_overrides_leaves_the_original_unchanged():
    cfg = load_config("test", environ=NO_ENV)
    cfg.with_overrides({"spark.shuffle_partitions": 4, "spark.conf.spark.sql.foo": "bar"})
    assert cfg["spark.shuffle_partitions"] == 2
    assert "spark.sql.foo" not in cfg["spark.conf"]


def test_environment_override_keeps_the_case_of_a_free_form_key():
    # Spark's keys are case-sensitive: lower-casing made this 'spark.sql.session.timezone', another key.
    cfg = load_config("test", environ={"LAKEJOBS__SPARK__CONF__spark.sql.session.timeZone": "Europe/Paris"})
    assert cfg["spark.conf"]["spark.sql.session.timeZone"] == "Europe/Paris"
    assert "spark.sql.session.timezone" not in cfg["spark.conf"]


def test_environment_override_section_names_stay_case_insensitive():
    cfg = load_config("test", environ={"LAKEJOBS__stream__Query_Name": "speed_b",
                                       "LAKEJOBS__SPARK__CONF__spark.sql.ansi.enabled": "false"})
    assert cfg["stream.query_name"] == "speed_b"
    assert cfg["spark.conf"]["spark.sql.ansi.enabled"] is False


@pytest.mark.parametrize("name", ["../../bronze/x", "a/b", "..", "", "with space", "dot.ted", "x" * 65,
                                  "tab\tname", "é"])
def test_an_unsafe_stream_query_name_is_refused_at_load(name):
    # The name is a checkpoint folder and the idempotent-write app id: '../../bronze/x' put a checkpoint
    # inside a table's folder.
    with pytest.raises(ConfigError) as err:
        load_config("test", environ={"LAKEJOBS__STREAM__QUERY_NAME": name} if name else NO_ENV,
                    overrides=[] if name else ["stream.query_name="])
    assert str(err.value).startswith("config key 'stream.query_name' must be 1 to 64 characters of "
                                     "A-Z a-z 0-9 _ -, got ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["speed_ratings_merge", "speed-2", "A9", "x" * 64])
def test_a_safe_stream_query_name_is_accepted(name):
    assert load_config("test", [f"stream.query_name={name}"], environ=NO_ENV)["stream.query_name"] == name
