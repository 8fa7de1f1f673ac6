"""`suuupra simulate` and `suuupra summary`: traffic in, and a read-back of what Kafka holds."""

from __future__ import annotations

import uuid
from collections import Counter
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from suuupra.cli.context import console, fail, parse_moment, state
from suuupra.events import EventPublisher
from suuupra.simulate.api_driver import (
    ENDPOINTS,
    ApiProfile,
    ApiRunSummary,
    Outcome,
    RunOptions,
    ServicesUnreachableError,
    build_plan,
    default_services_url,
    run_plan,
)
from suuupra.simulate.journeys import SimulationProfile
from suuupra.simulate.runner import Simulation, SimulationSummary
from suuupra.summary import records_in_domain_topics, summarize

API_PANEL = "Through the HTTP APIs (--via api)"
ERRORS_SHOWN = 10


class Via(StrEnum):
    KAFKA = "kafka"
    API = "api"


# Options that only one mode reads; giving one to the other mode is refused rather than silently ignored.
KAFKA_ONLY = ("rate", "duration", "count", "start_time", "users", "out_of_order", "late", "fraud", "malformed")
API_ONLY = ("services_url", "instructors", "learners", "concurrency", "invalid_share", "settle_timeout",
            "require_settled")  # fmt: skip


def simulate(
    ctx: typer.Context,
    seed: Annotated[
        int, typer.Option(help="Same seed and start time, same events (with --via api: same journeys).")
    ] = 42,
    rate: Annotated[float, typer.Option(help="Events per second; 0 sends as fast as Kafka takes them.")] = 500.0,
    duration: Annotated[float, typer.Option(help="Seconds of traffic at --rate.")] = 10.0,
    count: Annotated[int | None, typer.Option(help="Number of events (instead of rate x duration).")] = None,
    start_time: Annotated[str, typer.Option(help="Event time of the first event: 'now' or ISO-8601.")] = "now",
    users: Annotated[int, typer.Option(help="Size of the simulated user population.")] = 200,
    out_of_order: Annotated[float, typer.Option(help="Share of events sent after later ones.")] = 0.05,
    late: Annotated[float, typer.Option(help="Share of events sent long after their event time.")] = 0.01,
    fraud: Annotated[float, typer.Option(help="Share of payment journeys with a fraud-like pattern.")] = 0.05,
    malformed: Annotated[
        float, typer.Option(help="Share of extra malformed records (they must be dead-lettered).")
    ] = 0.0,
    via: Annotated[
        Via,
        typer.Option(
            help="kafka: write the events straight to Kafka; api: drive the journeys through the services' "
            "HTTP APIs (`suuupra services up`), which write the events themselves."
        ),
    ] = Via.KAFKA,
    services_url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of the services (default: settings services.host and services.port).",
            rich_help_panel=API_PANEL,
        ),
    ] = None,
    instructors: Annotated[
        int, typer.Option(min=1, help="Instructors who register and publish courses.", rich_help_panel=API_PANEL)
    ] = 3,
    learners: Annotated[
        int,
        typer.Option(min=0, help="Learners who register, log in, read, order, pay, ...", rich_help_panel=API_PANEL),
    ] = 50,
    concurrency: Annotated[
        int, typer.Option(min=1, help="HTTP requests in flight at once.", rich_help_panel=API_PANEL)
    ] = 8,
    invalid_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of learners who also send a deliberately invalid request (bad email, weak "
            "password, bad VPA, bad card number); each must get a 4xx.",
            rich_help_panel=API_PANEL,
        ),
    ] = 0.1,
    settle_timeout: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds a paid order is watched for FULFILLED or CANCELLED.", rich_help_panel=API_PANEL
        ),
    ] = 30.0,
    require_empty: Annotated[
        bool,
        typer.Option(
            "--require-empty",
            help="Refuse (exit 2) when the domain topics already hold records, e.g. of an earlier run: checks that "
            "compare a job with every event in Kafka need the job to have read all of them.",
        ),
    ] = False,
    require_settled: Annotated[
        bool,
        typer.Option(
            "--require-settled",
            help="Fail (exit 1) if an order is still pending when its settle timeout passes.",
            rich_help_panel=API_PANEL,
        ),
    ] = False,
) -> None:
    """Send realistic user journeys (register, browse, search, watch, order, pay by UPI or card, enrol) to Kafka.

    With --via api, through the services' HTTP APIs instead (`suuupra services up`); see docs/services.md.
    """
    _refuse_other_mode_options(ctx, via)
    settings = state(ctx).settings
    try:
        held = records_in_domain_topics(settings) if require_empty else 0
    except Exception as error:
        raise fail(f"cannot count the records of the domain topics: {error}\nIs the platform up? Run "
                   "`suuupra platform up` and `suuupra topics apply`.") from error  # fmt: skip
    if held > 0:
        raise fail(f"the domain topics already hold {held:,} records (an earlier run): `suuupra platform reset --yes` "
                   "empties the platform (trained models are kept), or drop --require-empty", code=2)  # fmt: skip
    if via is Via.API:
        _simulate_via_api(
            services_url=services_url or default_services_url(settings),
            profile=ApiProfile(seed=seed, instructors=instructors, learners=learners, invalid_share=invalid_share),
            options=RunOptions(concurrency=concurrency, settle_timeout_s=settle_timeout),
            require_settled=require_settled,
        )
        return
    total = count if count is not None else int(rate * duration)
    if total <= 0:
        raise fail("nothing to send: give --count, or a positive --rate and --duration")
    for name, share in (("out-of-order", out_of_order), ("late", late), ("fraud", fraud), ("malformed", malformed)):
        if not 0.0 <= share <= 1.0:
            raise fail(f"--{name} must be a share between 0 and 1, got {share}")
    start_ms = int(parse_moment(start_time).timestamp() * 1000)
    profile = SimulationProfile(
        seed=seed, start_time_ms=start_ms, users=users, out_of_order_share=out_of_order, late_share=late,
        fraud_share=fraud,
    )  # fmt: skip
    simulation = Simulation(EventPublisher(settings), profile, malformed_share=malformed)
    columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("events", total=total)
            summary = simulation.run(total, rate or None, lambda done: progress.update(task, completed=done))
    except Exception as error:
        raise fail(f"{error}\nIs the platform up and are topics and schemas in place? Run `suuupra platform up`, "
                   "`suuupra topics apply` and `suuupra schemas register`.") from error  # fmt: skip
    _print_simulation(summary)


def _refuse_other_mode_options(ctx: typer.Context, via: Via) -> None:
    others = KAFKA_ONLY if via is Via.API else API_ONLY
    sources = {name: ctx.get_parameter_source(name) for name in others}
    given = [name for name, source in sources.items() if source is not None and source.name != "DEFAULT"]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        other = "kafka" if via is Via.API else "api"
        verb = "applies" if len(given) == 1 else "apply"
        raise fail(f"{flags} {verb} only to --via {other}; this run is --via {via}")


def _simulate_via_api(services_url: str, profile: ApiProfile, options: RunOptions, require_settled: bool) -> None:
    # The run id only keeps e-mail addresses unique across runs: the seed alone decides what the journeys do.
    plan = build_plan(profile, run_id=uuid.uuid4().hex[:8])
    console.print(
        f"driving {len(plan.instructors)} instructor and {len(plan.learners)} learner journeys (seed "
        f"{profile.seed}, run {plan.run_id}) through {services_url}, {options.concurrency} requests at a time"
    )
    columns = (
        TextColumn("journeys"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[requests]} requests"),
        TimeElapsedColumn(),
    )  # fmt: skip
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("journeys", total=plan.journeys, requests=0)
            summary = run_plan(
                plan, services_url, options,
                lambda done, requests: progress.update(task, completed=done, requests=requests),
            )  # fmt: skip
    except ServicesUnreachableError as error:
        raise fail(str(error)) from error
    _print_api_run(summary)
    problems = []
    if summary.error_count:
        hints = [f"{summary.error_count} errors (see above)"]
        if summary.server_errors:
            hints.append(
                f"{summary.server_errors} server errors: their tracebacks are in the `suuupra services up` log"
            )
        if summary.no_answer:
            hints.append(f"{summary.no_answer} requests got no answer: are the services still up? Lower --concurrency")
        problems.append("; ".join(hints))
    if require_settled and summary.pending:
        problems.append(
            f"--require-settled: {summary.pending} orders still pending after {options.settle_timeout_s:g} s"
        )
    if problems:
        raise fail("\n".join(problems))


def _print_api_run(summary: ApiRunSummary) -> None:
    statuses = sorted({status for _, status in summary.requests})
    table = Table("endpoint", *map(str, statuses), "p50 ms", "p99 ms", title=f"requests to {summary.base_url}")
    for endpoint in ENDPOINTS:
        counts = {status: n for (name, status), n in summary.requests.items() if name == endpoint}
        if counts:
            table.add_row(
                endpoint, *(str(counts.get(status, "")) for status in statuses),
                f"{summary.latency_ms(0.5, endpoint):.0f}", f"{summary.latency_ms(0.99, endpoint):.0f}",
            )  # fmt: skip
    console.print(table)
    journeys = Table("journey", "outcome", "journeys", title="journeys")
    order = list(Outcome)
    for (role, outcome), n in sorted(summary.journeys.items(), key=lambda item: (item[0][0], order.index(item[0][1]))):
        journeys.add_row(role, str(outcome), str(n))
    console.print(journeys)
    rate = summary.request_count / summary.elapsed_s if summary.elapsed_s else 0.0
    console.print(
        f"{summary.request_count} requests in {summary.elapsed_s:.1f} s ({rate:,.0f}/s), latency p50 "
        f"{summary.latency_ms(0.5):.0f} ms, p99 {summary.latency_ms(0.99):.0f} ms; {len(summary.user_ids)} users "
        f"registered, {len(summary.updated_user_ids)} profiles updated, {len(summary.deleted_user_ids)} accounts "
        f"deleted; {len(summary.published_content_ids)} lessons published; {len(summary.order_ids)} orders, "
        f"{len(summary.payment_ids)} payments ({summary.payment_repeats} repeats with the same Idempotency-Key)"
    )
    sent, refused = sum(summary.invalid_sent.values()), sum(summary.invalid_rejected.values())
    console.print(f"invalid requests: {sent} sent ({_counts(summary.invalid_sent)}), {refused} refused with a 4xx")
    if summary.pending:
        console.print(
            f"[yellow]{summary.pending} orders still pending when their settle timeout passed "
            f"({_counts(summary.pending_statuses)}): the enrolment saga did not settle them in time. Does "
            "`suuupra services up` run its saga workers? A longer --settle-timeout gives them more time.[/]"
        )
    for error in summary.errors[:ERRORS_SHOWN]:
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
    if summary.error_count > ERRORS_SHOWN:
        console.print(f"[red]... and {summary.error_count - ERRORS_SHOWN} more errors[/]")


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counter.items())) or "none"


def _print_simulation(summary: SimulationSummary) -> None:
    table = Table("event type", "sent", title="sent to Kafka")
    for event_type, sent in sorted(summary.by_event_type.items()):
        table.add_row(event_type, str(sent))
    console.print(table)
    rate = summary.records / summary.elapsed_s if summary.elapsed_s else 0.0
    console.print(
        f"{summary.events} events + {sum(summary.malformed.values())} malformed records to "
        f"{len(summary.by_topic)} topics in {summary.elapsed_s:.1f} s ({rate:,.0f} records/s, "
        f"{summary.bytes_sent / 1e6:.1f} MB)"
    )
    patterns = {tag: n for tag, n in summary.tags.items()}
    console.print(f"patterns: {dict(sorted(patterns.items()))}")
    if summary.malformed:
        console.print(f"malformed: {dict(summary.malformed)}")


def summary(ctx: typer.Context) -> None:
    """Read every domain topic back from Kafka and count events per topic and type, and dead letters."""
    settings = state(ctx).settings
    try:
        result = summarize(settings)
    except Exception as error:
        raise fail(f"{error}\nIs the platform up (`suuupra platform up`)?") from error
    table = Table("topic", "records", title="in Kafka now")
    for topic, records in sorted(result.by_topic.items()):
        table.add_row(topic, str(records))
    console.print(table)
    types = Table("event type", "records")
    for event_type, records in sorted(result.by_event_type.items()):
        types.add_row(event_type, str(records))
    console.print(types)
    console.print(
        f"{sum(result.by_topic.values())} readable events from {len(result.users)} users "
        f"({result.bytes_read / 1e6:.1f} MB); {result.unreadable} unreadable records still in domain topics; "
        f"dead-letter topic: {dict(result.dead_letters_by_reason) or 'empty'}"
    )
