"""Shared mechanisms of lakejobs: config, session, tables, ledger. No job logic here."""

__version__ = "0.1.0"
