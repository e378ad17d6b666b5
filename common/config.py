"""Layered configuration: conf/base.yaml, an environment overlay, environment variables, --conf.

The base file is also the schema: every key a user may set exists there, with a value of
the type it must have. Anything else is refused at start with an error naming the key.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Mapping

from common import paths
from common.errors import ConfigError

ENVIRONMENTS = ("local", "test", "cluster", "databricks", "s3")
ENV_PREFIX = "LAKEJOBS__"  # LAKEJOBS__LAKE__ROOT=/data/lake sets lake.root
_MISSING = object()


def read_conf_file(name: str) -> Any:
    """Parse one YAML file shipped in conf/ (works from a checkout, a wheel, or a --py-files zip)."""
    import yaml  # here, not at the top: `lakejobs list` and `--version` run without the dependencies

    text = resources.files("conf").joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


@dataclass(frozen=True)
class Config:
    """A validated, read-only view of the merged configuration."""

    data: Mapping[str, Any]
    env: str

    def get(self, key: str, default: Any = _MISSING) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if default is _MISSING:
                    raise ConfigError(f"config key '{key}' is not set")
                return default
            node = node[part]
        return node

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Config":
        """A copy with dotted keys replaced, validated like the original (used by tests and jobs)."""
        merged = copy.deepcopy(dict(self.data))
        for key, value in overrides.items():
            _set_dotted(merged, key, value)
        return _validated(merged, self.env)

    def flat(self) -> dict[str, Any]:
        return dict(_flatten(self.data))


# A key that names a secret: its value is never recorded (ledger, MLflow, _SUCCESS.json), whoever put
# it in the config. Cloud connectors name theirs in many ways: fs.s3a.secret.key, fs.s3a.session.token,
# fs.azure.account.key.<account>, fs.azure.sas.<container>.<account>, ...auth.service.account.private.key.
SECRET_KEY = re.compile(r"secret|password|passwd|token|credential(?!s?[._]provider)|signature"
                        r"|(access|session|account|private|encryption|api|client|signing)[._-]?key"
                        r"|(^|[._-])(sas|sig|pwd)([._-]|$)", re.IGNORECASE)
REDACTED = "*** redacted ***"
SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A URL's userinfo (user:password@) and its query and fragment, where presigned and SAS URLs carry
# their signature: ?X-Amz-Signature=..., ?sig=..., #access_token=...
_URL_SECRETS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s?#]*@)?(?P<rest>[^\s?#]*)"
                          r"(?P<query>[?#]\S*)?")


def redact_text(text: str) -> str:
    """Text with the secrets a URL can carry replaced:
    'https://u:p@h/x.zip?sig=abc' → 'https://***@h/x.zip?*** redacted ***'."""
    def scrub(m: re.Match) -> str:
        userinfo = "***@" if m["userinfo"] else ""
        query = f"{m['query'][0]}{REDACTED}" if m["query"] and len(m["query"]) > 1 else (m["query"] or "")
        return f"{m['scheme']}{userinfo}{m['rest']}{query}"
    return _URL_SECRETS.sub(scrub, text)


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of (flat) parameters fit to record: the value of every secret-looking key replaced, in
    nested maps too, and the secrets of URLs in any other string value (see redact_text)."""
    return {k: REDACTED if SECRET_KEY.search(k) and v not in (None, "") else _redact_value(v)
            for k, v in params.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


def load_config(
    env: str = "local",
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge base ← overlay ← environment variables ← `key=value` overrides, then validate."""
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment '{env}'; valid: {', '.join(ENVIRONMENTS)}")
    data = read_conf_file("base.yaml")
    _merge_overlay(data, read_conf_file(f"{env}.yaml"), origin=f"conf/{env}.yaml")
    environ = os.environ if environ is None else environ
    for name, raw in sorted(environ.items()):
        if name.startswith(ENV_PREFIX):
            _set_dotted(data, _environ_key(name[len(ENV_PREFIX):]), _parse_scalar(raw),
                        origin=f"environment variable {name}")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf expects key=value, got '{item}'")
        _set_dotted(data, key.strip(), _parse_scalar(raw), origin=f"--conf {item}")
    return _validated(data, env)


def _environ_key(name: str) -> str:
    """SPARK__CONF__spark.sql.session.timeZone → spark.conf.spark.sql.session.timeZone: section names
    are upper case by habit, but a free-form key is taken as written (Spark's keys are case-sensitive)."""
    parts = name.split("__")
    for i in range(len(parts)):
        if _is_open(".".join(parts[: i + 1]).lower()):
            return ".".join([p.lower() for p in parts[: i + 1]] + parts[i + 1:])
    return ".".join(parts).lower()


def _parse_scalar(raw: str) -> Any:
    """'8' → 8, 'true' → True, 'null' → None, '[a, b]' → list; anything else stays a string."""
    import yaml

    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def _merge_overlay(data: dict, overlay: Mapping, origin: str) -> None:
    for key, value in _flatten(overlay):
        _set_dotted(data, key, copy.deepcopy(value), origin=origin)


# Maps whose keys are free-form (extra Spark settings, MLflow tags); their values are not typed.
OPEN_MAPS = ("spark.conf", "mlflow.tags")


def _is_open(dotted: str) -> bool:
    return dotted in OPEN_MAPS


def _set_dotted(data: dict, key: str, value: Any, origin: str = "override") -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts):
        path = ".".join(parts[: i + 1])
        if _is_open(path):
            # The rest of the dotted key is one free-form key ('spark.conf.spark.sql.x' → 'spark.sql.x').
            rest = ".".join(parts[i + 1:])
            target = node.setdefault(part, {})
            if rest:
                target[rest] = value
            elif isinstance(value, Mapping):
                target.update(value)
            else:
                raise ConfigError(f"config key '{key}' from {origin} must be a mapping")
            return
        if part not in node or (i < len(parts) - 1 and not isinstance(node[part], dict)):
            raise ConfigError(_unknown_key_message(key, data, origin))
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node[part]


def _unknown_key_message(key: str, data: Mapping, origin: str) -> str:
    known = [k for k, _ in _flatten(data)]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown config key '{key}' from {origin}{hint}"


def _flatten(data: Mapping, prefix: str = ""):
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and not _is_open(dotted):
            yield from _flatten(value, f"{dotted}.")
        else:
            yield dotted, value


def _validated(data: dict, env: str) -> Config:
    schema = dict(_flatten(read_conf_file("base.yaml")))
    for key, value in _flatten(data):
        expected = schema.get(key)
        if expected is None or value is None:
            continue
        if isinstance(expected, bool) != isinstance(value, bool) or not _same_kind(expected, value):
            raise ConfigError(
                f"config key '{key}' must be {type(expected).__name__}, got {value!r}"
            )
    for key, check in _CHECKS.items():
        value = Config(data, env).get(key, None)
        problem = check(value)
        if problem:
            raise ConfigError(f"config key '{key}' {problem}, got {value!r}")
    return Config(data, env)


def _same_kind(expected: Any, value: Any) -> bool:
    if isinstance(expected, float) and isinstance(value, int):
        return True
    if isinstance(expected, (list, dict)):
        return isinstance(value, type(expected))
    return isinstance(value, type(expected))


def _one_of(*allowed: str):
    return lambda v: None if v in allowed else f"must be one of {', '.join(allowed)}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive(v: Any) -> str | None:
    return None if _is_number(v) and v > 0 else "must be a positive number"


def _fraction(v: Any) -> str | None:
    return None if _is_number(v) and 0 <= v < 1 else "must be a number in [0, 1)"


def _open_fraction(v: Any) -> str | None:
    return None if _is_number(v) and 0 < v < 1 else "must be a number in (0, 1)"


def _non_empty_list(item_ok, what: str):
    def check(v: Any) -> str | None:
        ok = isinstance(v, list) and v and all(item_ok(x) for x in v)
        return None if ok else f"must be a non-empty list of {what}"
    return check


def _lake_root(v: Any) -> str | None:
    if not v:
        return "must not be empty"
    if paths.is_s3(str(v)) and not paths.is_s3a(str(v)):  # boto3 would land there; Spark's connector is s3a only
        return "must use the s3a:// scheme (Spark's S3 connector)"
    return None


_positive_ints = _non_empty_list(lambda x: isinstance(x, int) and not isinstance(x, bool) and x > 0,
                                 "positive integers")
_non_negative_numbers = _non_empty_list(lambda x: _is_number(x) and x >= 0, "numbers >= 0")
# ALS's regParam: at 0 a user with fewer ratings than the rank makes a singular matrix (a stack trace mid-fit).
_positive_numbers = _non_empty_list(lambda x: _is_number(x) and x > 0, "numbers > 0")


_CHECKS = {
    "source.kind": _one_of("generator", "folder", "url"),
    "spark.shuffle_partitions": _positive,
    "spark.log_level": _one_of("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"),
    "generator.ratings": _positive,
    "generator.users": _positive,
    "generator.movies": _positive,
    "sensor.timeout_s": _positive,
    "sensor.poll_s": _positive,
    "gold.bayes_min_votes": _positive,
    "lake.root": _lake_root,
    "s3.multipart_threshold_mb": _positive,
    "s3.multipart_chunk_mb": lambda v: None if _is_number(v) and v >= 5 else "must be at least 5 (S3's smallest part)",
    "stream.source": _one_of("files", "kafka"),
    # A folder name (the checkpoint) and the idempotent-write app id: nothing that walks out of a folder.
    "stream.query_name": lambda v: None if isinstance(v, str) and SAFE_NAME.fullmatch(v) else
    "must be 1 to 64 characters of A-Z a-z 0-9 _ -",
    "stream.trigger": _one_of("available_now", "processing_time"),
    "stream.late_policy": _one_of("accept", "quarantine"),
    "stream.holdback_fraction": _fraction,
    "simulator.events_per_file": _positive,
    "ml.test_fraction": _open_fraction,
    "ml.ranks": _positive_ints,
    "ml.reg_params": _positive_numbers,
    "ml.max_iters": _positive_ints,
    "ml.preferences": _non_empty_list(lambda x: x in ("binary", "rating", "centered"),
                                      "preference encodings (binary, rating, centered)"),
    "ml.ranking_ranks": _positive_ints,
    "ml.ranking_reg_params": _positive_numbers,
    "ml.ranking_alphas": _non_negative_numbers,
    "ml.ranking_max_iters": _positive_ints,
    "ml.bootstrap_samples": _positive,
    "ml.rmse_tolerance": lambda v: None if _is_number(v) and v >= 0 else "must be a number >= 0",
    "ml.blocks": _positive,
    "ml.top_k": _positive,
    "ml.candidate_buffer": lambda v: None if isinstance(v, int) and v >= 0 else "must be a whole number >= 0",
    "ml.baseline_reg": _positive,
    "ml.relevant_rating": _positive,
    "ml.min_user_ratings": _positive,
    "ml.min_item_ratings": _positive,
}
