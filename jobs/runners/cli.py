"""The `lakejobs` command: list jobs, run one, run the pipeline, show the tables.

The same main() serves the console script, the spark-submit entry file and Databricks'
python_wheel_task, so every runner ends in the same run(spark, cfg).
"""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import date

from common import version
from common.config import ENVIRONMENTS, load_config
from common.errors import LakejobsError

NOT_YET = 3  # `lakejobs sense`: the snapshot is not complete yet, look again later


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", default="local", choices=ENVIRONMENTS, help="configuration overlay (default: local)")
    common.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p = argparse.ArgumentParser(prog="lakejobs", description="Lambda-architecture jobs on Delta Lake.")
    p.add_argument("--version", action="version", version=f"lakejobs {version()}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the jobs")
    run = sub.add_parser("run", parents=[common], help="run one job")
    run.add_argument("job")
    run.add_argument("--logical-date", type=date.fromisoformat, metavar="YYYY-MM-DD",
                     help="the day this run stands for (an orchestrator's, e.g. Airflow's ds); kept in its ledger row")
    sense = sub.add_parser("sense", parents=[common], help="one look of the raw-zone sensor (for an orchestrator's "
                           f"sensor): exit 0 when raw.snapshot is complete, {NOT_YET} while it is not")
    sense.add_argument("--waited", type=float, default=0.0, metavar="SECONDS",
                       help="time already waited; from sensor.timeout_s on, fail with the sensor's message")
    backfill = sub.add_parser("backfill", parents=[common], help="run the dated tasks for each day of a range, in order; "
                              "days already built from the same inputs are skipped")
    backfill.add_argument("tasks", nargs="*", metavar="TASK", help="dated tasks to run (default: all of them)")
    backfill.add_argument("--from", dest="first", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    backfill.add_argument("--to", dest="last", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    backfill.add_argument("--rerun", action="store_true", help="build every day of the range, done or not")
    pipe = sub.add_parser("pipeline", parents=[common], help="run the pipeline of conf/pipeline.yaml in order")
    pipe.add_argument("--plan", action="store_true", help="print the tasks in run order with what each waits for; run nothing")
    sub.add_parser("tables", parents=[common], help="show every table with its location, version and rows")
    status = sub.add_parser("status", parents=[common], help="last run of each task, tables, stream lag, champion model; "
                            "exit 1 when a task failed or a table is stale")
    history = sub.add_parser("history", parents=[common], help="past runs from the ledger, newest first")
    history.add_argument("task", nargs="?", help="only this task's runs")
    history.add_argument("--limit", type=int, default=20, help="runs to list (default 20)")
    for command in (status, history):
        command.add_argument("--json", action="store_true", help="JSON for machines")
    query = sub.add_parser("query", parents=[common], help="run Spark SQL over the tables, by logical name")
    query.add_argument("sql", help='e.g. "SELECT * FROM gold.movie_stats ORDER BY bayes_avg DESC LIMIT 10"')
    query.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    submit = sub.add_parser("submit-args", parents=[common], help="print the spark-submit options (jars, Delta) for --env")
    submit.add_argument("--master", help="fail with a clear message unless this Spark master answers (spark://host:port)")
    submit.add_argument("--properties-file", metavar="PATH", help="where to write the Spark settings, readable by "
                        "you only (default: a new temporary file)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its callback server chats at INFO
    try:
        return _dispatch(args)
    except LakejobsError as e:  # the user's to fix: one clear line, no stack trace
        print(f"lakejobs: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the ledger has the run as interrupted (jobs/runners/runner.py)
        print(f"lakejobs: {e or 'interrupted by SIGINT'}", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)


def _dispatch(args) -> int:
    from jobs.runners import registry  # imported here so `--version` and argument errors stay instant

    if args.command == "list":
        for name in registry.JOBS:
            print(f"{name:<12} {registry.describe(name)}")
        return 0
    if args.command == "run":
        registry.check(args.job)  # an unknown name fails before any Spark start-up
    if args.command == "backfill":
        from jobs.ops import backfill

        backfill.check(args.tasks, args.first, args.last)  # likewise
    from jobs.runners import pipeline

    if args.command == "pipeline" and args.plan:
        tasks = pipeline.load_tasks()
        for name in pipeline.run_order({name: task.depends_on for name, task in tasks.items()}):
            print(f"{name:<12} after: {', '.join(tasks[name].depends_on) or '-'}  {' '.join(tasks[name].conf_args())}".rstrip())
        return 0
    cfg = load_config(args.env, args.conf)
    if args.command == "sense":  # no Spark: a look at the marker file only
        from common import raw_zone

        found = raw_zone.poke(cfg, cfg["raw.snapshot"], args.waited, cfg["sensor.timeout_s"])
        print(f"snapshot {found.id} is complete" if found else
              f"raw zone: snapshot {cfg['raw.snapshot']} not complete yet ({args.waited:g}s of {cfg['sensor.timeout_s']:g}s)")
        return 0 if found else NOT_YET
    from common.session import check_master, get_session, session_settings

    if args.command == "submit-args":  # so spark-submit and get_session configure Spark one way
        if args.master:
            check_master(args.master)
            cfg = cfg.with_overrides({"spark.master": args.master})  # the jars travel differently to a cluster
        # In a file only the owner reads, not as --conf arguments: `ps` shows any process's arguments
        # to every user of the machine, spark.conf's secrets with them.
        print(f"--properties-file {_write_properties(session_settings(cfg), args.properties_file)}")
        return 0
    from jobs.runners import runner
    from jobs.ops.show import show_tables

    spark = get_session(cfg)
    if args.command == "tables":
        print("\n".join(show_tables(spark, cfg)))
        return 0
    if args.command in ("status", "history"):
        from jobs.ops import status_text

        return status_text.command(spark, cfg, args)
    if args.command == "backfill":
        print("\n".join(backfill.run(spark, cfg, args.tasks, args.first, args.last, args.rerun)))
        return 0
    if args.command == "query":
        from jobs.serving import query

        query.run(spark, cfg, args.sql, args.limit)
        return 0
    tasks = {args.job: pipeline.Task([])} if args.command == "run" else pipeline.load_tasks()
    for name in pipeline.run_order({name: task.depends_on for name, task in tasks.items()}):
        task_cfg = cfg.with_overrides(tasks[name].conf) if tasks[name].conf else cfg
        result = runner.run_job(spark, task_cfg, name, getattr(args, "logical_date", None))
        print("\n".join(runner.report(name, result)), flush=True)
    if args.command == "pipeline":
        from jobs.serving.serving import top_movies

        print("\nThe lake now holds:\n" + "\n".join(show_tables(spark, cfg)))
        print("\n".join(top_movies(spark, cfg)))
    return 0


def _write_properties(settings: dict[str, str], path: str | None) -> str:
    """Write settings as a Java properties file with mode 0600 from its first byte (mkstemp), replacing
    any file at path whole, so an old one readable by others does not keep its mode; returns the path."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path)) if path else None
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=".lakejobs-spark-", suffix=".properties", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(f"{_escape(k, key=True)}={_escape(v, key=False)}\n" for k, v in settings.items())
    if not path:
        return staged
    os.replace(staged, path)
    return path


def _escape(text: str, key: bool) -> str:
    """java.util.Properties syntax: backslash escapes; a key also escapes its separators and spaces."""
    special = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}
    return "".join(special.get(c) or (f"\\{c}" if (key and c in "=: #!") or (c == " " and i == 0) else c)
                   for i, c in enumerate(str(text)))


def entry() -> None:
    """The `lakejobs` console script, also what Databricks' python_wheel_task calls: a failure leaves
    as SystemExit, so it reaches a caller that ignores the returned status too."""
    status = main()
    if status:
        sys.exit(status)


def submit_main(argv: list[str] | None = None) -> int:
    """spark-submit entry: `--job JOB [--env ENV] [--conf k=v ...]`, same as `lakejobs run JOB ...`."""
    p = argparse.ArgumentParser(prog="lakejobs_entry.py")
    p.add_argument("--job", required=True)
    args, rest = p.parse_known_args(argv)
    return main(["run", args.job, *rest])


if __name__ == "__main__":
    sys.exit(main())
