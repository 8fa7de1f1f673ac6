"""End-to-end figures of the fraud and features jobs (issue 9), on the local platform.

    .venv/bin/python bench/fraud_e2e.py                       # 500 payments/s + 5,000 clickstream events/s, 30 s
    .venv/bin/python bench/fraud_e2e.py --payments 200 --clicks 2000 --seconds 10

Needs the platform (`suuupra platform up`) and a trained model (`suuupra fraud train`; the newest is used). Everything
else is its own and removed at the end: topics (bench-fraud-<id>.*), a Feast project and offline schema, a ClickHouse
database, consumer groups and checkpoints. Both jobs run as `suuupra jobs run features|fraud` (unbounded) in their
own process groups and are killed at the end.

- Decision latency: each payment.initiated is produced with event_time = its send time; a consumer on the payment
  topic takes each payment.fraud_decided of the fraud job as it arrives: latency = arrival - send (so it includes the
  producer's batching, Kafka both ways, the job and the consumer's poll, and this script's own threads competing for
  the GIL with its producer), and, free of the script's own delays, decision record timestamp (the job stamps it
  when it decides, just before producing it) - send.
- Feature freshness: one clickstream event in 100 is a marker; a poller asks the online store (Feast's
  get_online_features, every 20 ms) for the markers' users until `user_engagement.as_of_ms` reaches the marker's
  event time: freshness = visible - send.
- The model's and the rule stand-in's precision and recall are those `suuupra fraud train` measured on its held-out
  payments (printed from the model card).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.support import bench_settings, payment, start_job, summary, view
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.events import EventPublisher
from suuupra.features.store import apply, feature_store, online_features, remove
from suuupra.fraud.model import load_model
from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform
from suuupra.settings import Settings, load_settings


class Decisions(threading.Thread):
    """Per payment id, when its decision reached the consumer and the decision record's Kafka timestamp (set by the
    job to the moment it decided, just before producing it: free of this script's own GIL contention)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        from suuupra.events import event_consumer

        self.consumer = event_consumer(settings, [settings.topics.payment], read_only=True)
        self.arrived: dict[str, float] = {}
        self.stamped: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with self.consumer as consumer:
            while not self.stop.is_set():
                record = consumer.poll(0.05)
                if record is not None and record.value["event_type"] == "payment.fraud_decided":
                    self.arrived.setdefault(str(record.value["payment_id"]), time.time())
                    self.stamped.setdefault(str(record.value["payment_id"]), record.timestamp_ms / 1000)


class Freshness(threading.Thread):
    """Polls the online store for the markers' users until each marker's event time is reflected."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.store = feature_store(settings)
        self.pending: dict[str, tuple[int, float]] = {}  # user -> (event time, send time), newest marker only
        self.lock = threading.Lock()
        self.freshness: list[float] = []
        self.stop = threading.Event()

    def mark(self, user: str, event_ms: int, sent: float) -> None:
        with self.lock:
            self.pending.setdefault(user, (event_ms, sent))

    def run(self) -> None:
        while not self.stop.is_set() or self.pending:
            with self.lock:
                users = list(self.pending)[:200]
            if users:
                seen = online_features(self.store, [{"user_id": u} for u in users], ["user_engagement:as_of_ms"])
                now = time.time()
                with self.lock:
                    for user, as_of in zip(users, seen["user_engagement__as_of_ms"], strict=True):
                        event_ms, sent = self.pending[user]
                        if as_of is not None and as_of >= event_ms:
                            self.freshness.append((now - sent) * 1000)
                            del self.pending[user]
            if self.stop.is_set() and time.monotonic() > getattr(self, "deadline", float("inf")):
                break
            time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--payments", type=int, default=500, help="payment.initiated per second")
    parser.add_argument("--clicks", type=int, default=5000, help="background clickstream events per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="seconds at the same rates before measuring (JIT, caches, catch-up)"
    )
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--logs", type=Path, default=None, help="keep the jobs' output here")
    parser.add_argument(
        "--dump",
        type=Path,
        default=None,
        help="write one line per measured payment: send time (epoch s), stamped and read-back ms",
    )
    args = parser.parse_args()

    base = load_settings()
    Platform(base).require_healthy()
    model = load_model(base)
    run_id = uuid.uuid4().hex[:8]
    log_dir = args.logs or Path(f"/tmp/bench-fraud-{run_id}")
    log_dir.mkdir(parents=True, exist_ok=True)
    with isolated_environment(base, f"bench-fraud-{run_id}") as isolated:
        settings = bench_settings(isolated, f"bench-fraud-{run_id}", log_dir)
        database = settings.clickhouse.database
        backend = server_backend(settings)
        migrate(backend, database)
        apply(settings)
        jobs = [start_job(settings, "features", log_dir), start_job(settings, "fraud", log_dir)]
        decisions, freshness = Decisions(settings), Freshness(settings)
        decisions.start()
        freshness.start()
        try:
            publisher = EventPublisher(settings, producer_overrides={"linger.ms": 1})
            users = [str(uuid.uuid4()) for _ in range(args.users)]
            print(f"model {model.version}; waiting for both jobs", flush=True)
            probe_user = users[0]
            deadline = time.monotonic() + 180
            while True:  # ready when a probe payment is decided and a probe view is in the online store
                now_ms = int(time.time() * 1000)
                probe = payment(probe_user, now_ms)
                publisher.publish(probe)
                publisher.publish(view(probe_user, now_ms))
                publisher.flush()
                time.sleep(1.0)
                online = online_features(freshness.store, [{"user_id": probe_user}], ["user_engagement:as_of_ms"])
                if probe["payment_id"] in decisions.arrived and online["user_engagement__as_of_ms"][0]:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"the jobs did not answer within 180 s; logs in {log_dir}")
            sent: dict[str, float] = {}
            total = args.warmup + args.seconds
            step = 0.01  # send in 10 ms slices
            began = time.time()
            index = clicks_sent = payments_sent = 0
            while (elapsed := time.time() - began) < total:
                measuring = elapsed >= args.warmup
                slice_end = began + (int(elapsed / step) + 1) * step
                # Paced on the schedule, so a slow moment is caught up instead of drifting.
                due_clicks = max(0, int((slice_end - began) * args.clicks) - clicks_sent)
                due_payments = max(0, int((slice_end - began) * args.payments) - payments_sent)
                clicks_sent += due_clicks
                payments_sent += due_payments
                for _ in range(due_clicks):
                    index += 1
                    user = users[index % len(users)]
                    now = time.time()
                    publisher.publish(view(user, int(now * 1000)))
                    if measuring and index % 100 == 0:
                        freshness.mark(user, int(now * 1000), now)
                for _ in range(due_payments):
                    index += 1
                    now = time.time()
                    event = payment(users[(index * 7) % len(users)], int(now * 1000))
                    publisher.publish(event)
                    if measuring:
                        sent[event["payment_id"]] = now
                with suppress(ValueError):
                    time.sleep(max(0.0, slice_end - time.time()))
            publisher.flush()
            achieved = len(sent) / args.seconds
            settle = time.monotonic() + 30
            while time.monotonic() < settle and (any(p not in decisions.arrived for p in sent) or freshness.pending):
                time.sleep(0.2)
            latencies = [(decisions.arrived[p] - t) * 1000 for p, t in sent.items() if p in decisions.arrived]
            decided = [(decisions.stamped[p] - t) * 1000 for p, t in sent.items() if p in decisions.stamped]
            freshness.stop.set()
            decisions.stop.set()
            if args.dump:
                with args.dump.open("w") as dump:
                    for p, t in sorted(sent.items(), key=lambda item: item[1]):
                        stamped = (decisions.stamped[p] - t) * 1000 if p in decisions.stamped else float("nan")
                        arrived = (decisions.arrived[p] - t) * 1000 if p in decisions.arrived else float("nan")
                        dump.write(f"{t:.3f} {stamped:.1f} {arrived:.1f}\n")
            card = model.card.metrics
            print(f"\nfraud + features jobs, parallelism {settings.flink.parallelism}, model {model.version}")
            print(
                f"load: {args.payments} payments/s asked ({achieved:.0f}/s sent while measuring) + {args.clicks} "
                f"clickstream events/s, {args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up"
            )
            print(
                f"payment.initiated sent -> decision record stamped by the job: {summary(decided)}\n"
                f"payment.initiated sent -> payment.fraud_decided read back from Kafka: {summary(latencies)}; "
                f"{len(latencies)} of {len(sent)} decided"
            )
            print(
                f"feature freshness (event sent -> visible in the online store): {summary(freshness.freshness)}; "
                f"{len(freshness.pending)} markers never seen"
            )
            for who in ("model", "rules"):
                m = card[who]
                print(
                    f"{who:>5} on the held-out payments: precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
                    f"ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m['pr_auc']:.3f} ({m['payments']:.0f} payments, "
                    f"{m['fraud']:.0f} fraud)"
                )
            print(f"load average: {os.getloadavg()}")
        finally:
            for job in jobs:
                with suppress(ProcessLookupError):
                    os.killpg(job.pid, signal.SIGKILL)
                job.wait(30)
            remove(settings)
            backend.execute(f"DROP DATABASE IF EXISTS {database}")
            backend.close()


if __name__ == "__main__":
    main()
