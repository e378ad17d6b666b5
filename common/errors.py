"""Errors a user can cause and fix; the CLI prints them as one line, without a stack trace."""


class LakejobsError(Exception):
    """Base of every error caused by input or configuration rather than a bug."""


class ConfigError(LakejobsError, ValueError):
    """A configuration key or value is unknown or invalid; the message names it."""


class UnknownJobError(LakejobsError):
    """A job name is not in the registry; the message lists the valid ones."""


class SourceError(LakejobsError):
    """A source dataset is missing, incomplete, or fails its checksum."""


class SensorTimeout(LakejobsError):
    """The upstream data a sensor waits for did not arrive in time."""


class TrackingError(LakejobsError):
    """The MLflow tracking server or model registry cannot be reached, or holds no model to use."""


class ClusterError(LakejobsError):
    """The Spark master a job is sent to does not answer."""


class QueryError(LakejobsError):
    """A query names a table the lake does not hold, or is not valid Spark SQL."""


class ReconciliationError(LakejobsError):
    """The lines of a landed file do not add up to the rows loaded and quarantined; the message gives
    both sides and what to do, and the tables the load wrote are back at their earlier versions."""


class ExpectationError(LakejobsError):
    """A load broke an expect_or_fail rule or its source's max_bad_fraction; nothing was committed."""
