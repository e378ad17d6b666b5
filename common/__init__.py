"""Shared mechanisms of lakejobs: config, session, tables, ledger. No job logic here."""

__version__ = "0.1.0"
STAMP_FILE = "_stamp.json"  # written by `make package` into the packaged copy of common/, never the checkout


def version() -> str:
    """The version that runs: `0.1.0+g1a2b3c4` from a wheel or zip `make package` built at commit
    1a2b3c4 (`.dirty` appended when the sources had uncommitted changes), `0.1.0+dev` from a checkout."""
    import json
    from importlib import resources

    try:
        stamp = resources.files(__name__).joinpath(STAMP_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return f"{__version__}+dev"
    return json.loads(stamp)["version"]
