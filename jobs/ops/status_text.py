"""The text of `lakejobs status` and `lakejobs history`, from the plain data of jobs/ops/status.py."""
from __future__ import annotations

from datetime import datetime

KEY_METRICS = ("rmse", "mae", "precision", "ndcg")  # the model's headline numbers; --json has them all


def _when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}" if t else "-"


def _ago(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "-"
    s = (now - t).total_seconds()
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


def _num(v) -> str:
    return "-" if v is None else f"{v:,}"


def _took(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def status_lines(report: dict) -> list[str]:
    now = report["checked_at"]
    lines = [f"lake {report['lake']}, {now:%Y-%m-%d %H:%M:%S} UTC", "",
             f"{'task':<12} {'last run':<11} {'started (UTC)':<19} {'took':>9} {'rows in':>11} {'rows out':>11}"]
    for t in report["tasks"]:
        if t["status"] is None:
            lines.append(f"{t['task']:<12} {'never':<11}")
            continue
        lines.append(f"{t['task']:<12} {t['status']:<11} {_when(t['started_at']):<19} {_took(t['seconds']):>9} "
                     f"{_num(t['rows_in']):>11} {_num(t['rows_out']):>11}")
    lines += broken_expectations(report["tasks"])
    lines += ["", f"{'table':<28} {'version':>7} {'last write (UTC)':<19} {'':>12} {'rows':>11}"]
    for t in report["tables"]:
        lines.append(f"{t['table']:<28} {t['version']:>7} {_when(t['last_write']):<19} {_ago(t['last_write'], now):>12} "
                     f"{_num(t['rows']):>11}")
    s = report["stream"]
    lines.append("")
    if s is None:
        lines.append("stream: no micro-batch yet")
    else:
        pending = ("(Kafka: ask the broker)" if s["pending_files"] is None
                   else f"{s['pending_files']} files, {s['pending_events']:,} events")
        lines.append(f"stream {s['query']}: last micro-batch {_num(s['last_batch'])} at {_when(s['last_batch_at'])} "
                     f"({_ago(s['last_batch_at'], now)}); last merge {_ago(s['last_merge_at'], now)}; "
                     f"landed, not merged yet: {pending}")
    m = report["model"]
    if m is None:
        lines.append("model: no champion yet")
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in m["metrics"].items() if any(w in k for w in KEY_METRICS))
        lines.append(f"model {m['name']}: champion v{m['version']}, promoted {_when(m['promoted_at'])} UTC "
                     f"({_ago(m['promoted_at'], now)}); {shown or 'no metrics'}")
    lines.append("")
    lines += ["PROBLEMS:", *[f"  {p}" for p in report["problems"]]] if report["problems"] else ["OK"]
    return lines


def broken_expectations(tasks: list[dict]) -> list[str]:
    """A line of the rows that broke an expectation (conf/schemas.yaml) in each task's last run."""
    broken = [f"{t['task']} {k.replace('.expect.', ' ')} {v:,}" for t in tasks
              for k, v in sorted((t.get("counts") or {}).items()) if ".expect." in k and v]
    return ["", "expectations broken (last runs): " + "; ".join(broken)] if broken else []


def history_lines(runs: list[dict]) -> list[str]:
    lines = [f"{'started (UTC)':<19} {'job':<12} {'status':<11} {'took':>9} {'rows in':>11} {'rows out':>11}  run id / error"]
    for r in runs:
        tail = r["run_id"] + (f"  {r['error'].splitlines()[0]}" if r["error"] else "")
        lines.append(f"{_when(r['started_at']):<19} {r['job']:<12} {r['status']:<11} {_took(r['seconds']):>9} "
                     f"{_num(r['rows_in']):>11} {_num(r['rows_out']):>11}  {tail}")
    return lines if runs else lines + ["(no runs in the ledger)"]


def command(spark, cfg, args) -> int:
    """`lakejobs status [--json]` (exit 1 on a problem) and `lakejobs history [TASK] [--limit N] [--json]`."""
    from jobs.runners import registry
    from jobs.ops import status

    if args.command == "history":
        if args.task:
            registry.check(args.task)  # a misspelt task is one line naming the valid ones, not an empty list
        runs = status.history(status.ledger_runs(spark, cfg), args.task, args.limit)
        print(status.to_json(runs) if args.json else "\n".join(history_lines(runs)))
        return 0
    report = status.gather(spark, cfg)
    print(status.to_json(report) if args.json else "\n".join(status_lines(report)))
    return 1 if report["problems"] else 0
