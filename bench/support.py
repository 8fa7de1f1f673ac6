"""What several benchmarks share: percentiles, starting a job in its own process group, and events stamped now."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from suuupra.settings import Settings, environment_overrides

SUUUPRA = str(Path(sys.executable).parent / "suuupra")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def summary(values: list[float]) -> str:
    worst = max(values, default=float("nan"))
    shares = ", ".join(f"p{round(share * 100)} {percentile(values, share):.1f} ms" for share in (0.5, 0.9, 0.99))
    return f"{shares}, max {worst:.1f} ms (n={len(values)})"


def start_job(settings: Settings, name: str, log_dir: Path) -> subprocess.Popen[bytes]:
    """`suuupra jobs run NAME` on the settings' topics, database and checkpoints, output in `log_dir`."""
    sections = ("topics", "flink", "features", "fraud", "clickhouse")
    environment = {**os.environ, **environment_overrides(settings, *sections), "FLINK_LOG_DIR": str(log_dir / name)}
    log = (log_dir / f"{name}.out").open("wb")
    return subprocess.Popen([SUUUPRA, "jobs", "run", name], env=environment, start_new_session=True, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip


def bench_settings(isolated: Settings, name: str, log_dir: Path) -> Settings:
    """The isolated settings with a ClickHouse database, a Feast repository, checkpoints and consumer groups of the
    benchmark's own (`name`, e.g. bench-fraud-<id>; the database is `name` with underscores)."""
    return isolated.model_copy(update={
        "features": isolated.features.model_copy(update={"repo_dir": log_dir / "feature_store"}),
        "clickhouse": isolated.clickhouse.model_copy(update={"database": name.replace("-", "_")}),
        "flink": isolated.flink.model_copy(update={"checkpoint_dir": log_dir / "checkpoints",
                                                   "consumer_group_prefix": name}),
    })  # fmt: skip


def payment(user: str, now_ms: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "event_type": "payment.initiated", "event_time": now_ms,
        "producer": "bench", "correlation_id": str(uuid.uuid4()), "user_id": user, "payment_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()), "attempt": 1, "method": "UPI", "amount_minor": 99_900, "currency": "INR",
        "device_id": f"dev-{user[:8]}", "ip_address": "10.0.0.1", "idempotency_key": str(uuid.uuid4()),
    }  # fmt: skip


# Fifty lessons of one course; ids are UUIDs like every id of the platform's events (the jobs dead-letter others).
COURSE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "suuupra-bench/course"))
LESSON_IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"suuupra-bench/lesson/{n}")) for n in range(50)]


def view(user: str, now_ms: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "event_type": "clickstream.content_viewed", "event_time": now_ms,
        "producer": "bench", "correlation_id": str(uuid.uuid4()), "user_id": user, "session_id": str(uuid.uuid4()),
        "content_id": LESSON_IDS[now_ms % 50], "course_id": COURSE_ID, "watch_seconds": 30,
        "content_duration_seconds": 600, "position_seconds": 30, "completed": False,
    }  # fmt: skip
