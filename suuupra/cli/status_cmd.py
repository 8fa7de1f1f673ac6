"""`suuupra status`: components, jobs, consumer lag, dead letters and waiting payments, in one place."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Annotated

import typer
from rich.table import Table

from suuupra.cli.context import console, state
from suuupra.status import PlatformReport, platform_report


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none yet"
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _render(report: PlatformReport) -> None:
    components = Table(title="components")
    for column in ("component", "state", "pid", "address", "detail"):
        components.add_column(column)
    for status in report.components:
        components.add_row(status.name, "healthy" if status.health.ok else "DOWN", str(status.pid or "-"),
                           status.address, status.health.detail)  # fmt: skip
    console.print(components)

    jobs = Table(title="jobs")
    for column in ("job", "where", "state", "restarts", "last checkpoint", "last failure"):
        jobs.add_column(column)
    for job in report.jobs:
        checkpoint = f"{_age(job.last_checkpoint_age_s)} ({job.checkpoints_completed} done)"
        where = f"{job.where}\nmetrics: {job.metrics_url}" if job.metrics_url else job.where
        jobs.add_row(job.name, where, job.state, str(job.restarts), checkpoint, job.last_failure or "-")
    console.print(jobs if report.jobs else "jobs: none running (`suuupra jobs run NAME` or `jobs submit`)")

    by_group: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for entry in report.lag:
        by_group[(entry.group, entry.topic)].append((entry.partition, entry.lag))
    lag = Table(title="consumer lag (records behind the end, per group and topic)")
    for column in ("group", "topic", "lag", "partitions behind (partition: records)"):
        lag.add_column(column)
    for (group, topic), partitions in sorted(by_group.items()):
        behind = ", ".join(f"{partition}: {count:,}" for partition, count in partitions if count) or "-"
        lag.add_row(group, topic, f"{sum(count for _, count in partitions):,}", behind)
    console.print(lag if report.lag else "consumer lag: no group has committed offsets")

    letters = Table(title="dead letters")
    for column in ("failed by", "reason", "records"):
        letters.add_column(column)
    for (failed_by, reason), count in sorted(report.dead_letters.items()):
        letters.add_row(failed_by, reason, f"{count:,}")
    console.print(letters if report.dead_letters else "dead letters: none")

    if report.pending_payments is not None:
        pending = report.pending_payments
        oldest = f", the oldest for {pending.oldest_age_s:.0f} s" if pending.oldest_age_s is not None else ""
        console.print(f"payments waiting on a fraud decision: {pending.count}{oldest}")
    for problem in report.problems:
        console.print(f"[red]problem:[/red] {problem}")


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Each component, each job (state, restarts, last checkpoint age), consumer lag per group and partition, dead
    letters by source and reason, payments waiting on a decision; exits 1 when anything is down or unreadable."""
    report = platform_report(state(ctx).settings)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _render(report)
    if not report.healthy:
        raise typer.Exit(1)
