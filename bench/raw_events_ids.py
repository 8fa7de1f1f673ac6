"""ClickHouse's CPU per raw_events row with the envelope's ids as text (the table before migration 0006) or as UUIDs.

    .venv/bin/python bench/raw_events_ids.py [--rows 1000000] [--batch 50000] [--rounds 2]

Needs the platform (`suuupra platform up`). Makes `--rows` raw_events rows from simulated events as the analytics
job does (envelope columns, the other fields as canonical JSON), encodes them once as RowBinary for each variant,
then per round and variant, alternating: a fresh database migrated to that variant, the rows inserted over HTTP in
`--batch`-row inserts (the job's sink: RowBinary, one insert after another), and the wait until ClickHouse has run
no merge of that database for 5 s. Prints the ClickHouse server's CPU (user + system, /proc) per row for the inserts
and for inserts and merges together, the parts left and their bytes on disk. Its databases (bench_<id>_text,
bench_<id>_uuid) are dropped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from cpu_usage import CpuWatch

from schemas import default_catalog
from suuupra.clickhouse.migrate import MIGRATIONS_DIR, migrate, server_backend
from suuupra.settings import Settings, load_settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.verify.analytics import canonical_json

IDS_AS_UUIDS_SINCE = "0006"
MERGES_WAIT_S = 120.0
QUIET_S = 5.0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode()
    return _varint(len(raw)) + raw


def _uuid(value: str) -> bytes:
    number = uuid.UUID(value).int
    return struct.pack("<QQ", number >> 64, number & (2**64 - 1))


def encode(rows: list[tuple[str, str, int, str, str, str, str, int, int, str]], ids_as: str, batch: int) -> list[bytes]:
    """RowBinary batches in raw_events' column order; ids as `text` or `uuid`."""
    write_id = _uuid if ids_as == "uuid" else _text
    batches = []
    for start in range(0, len(rows), batch):
        out = bytearray()
        for event_id, event_type, time_ms, user_id, correlation_id, producer, topic, partition, offset, payload in rows[
            start : start + batch
        ]:
            out += write_id(event_id) + _text(event_type) + struct.pack("<Iq", time_ms // 1000, time_ms)
            out += write_id(user_id) + write_id(correlation_id) + _text(producer) + _text(topic)
            out += struct.pack("<iq", partition, offset) + _text(payload)
        batches.append(bytes(out))
    return batches


def clickhouse_cpu_s(watch: CpuWatch) -> float:
    """The local ClickHouse server's CPU seconds so far (user + system)."""
    return watch.read().clickhouse


def post(settings: Settings, sql: str, body: bytes = b"") -> str:
    clickhouse = settings.clickhouse
    request = urllib.request.Request(
        f"http://{clickhouse.host}:{clickhouse.http_port}/?query={urllib.parse.quote(sql)}",
        data=body,
        headers={"X-ClickHouse-User": clickhouse.user, "X-ClickHouse-Key": clickhouse.password.get_secret_value()},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return str(response.read().decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings()
    # Only ClickHouse's figure is read: no job process group.
    watch = CpuWatch(settings, job_process_group=-1, clock_origin=time.perf_counter())
    if clickhouse_cpu_s(watch) == 0:
        raise SystemExit("no local ClickHouse server is running: start the platform with `suuupra platform up`")
    catalog = default_catalog()
    envelope = set(catalog.envelope_fields)

    began = time.perf_counter()
    rows = []
    for offset, event in enumerate(generate(SimulationProfile(seed=1, users=5000), args.rows)):
        value = event.value
        payload = canonical_json({name: field for name, field in value.items() if name not in envelope})
        rows.append((value["event_id"], value["event_type"], value["event_time"], value["user_id"],
                     value["correlation_id"], value["producer"],
                     settings.topics.resolve(catalog.schema_for(value["event_type"]).topic),
                     offset % 12, offset, payload))  # fmt: skip
    encoded = {ids_as: encode(rows, ids_as, args.batch) for ids_as in ("text", "uuid")}
    print(f"{args.rows:,} rows made and encoded in {time.perf_counter() - began:.1f} s (not counted below)")

    run = uuid.uuid4().hex[:8]
    before_uuids = Path(tempfile.mkdtemp()) / "migrations"
    before_uuids.mkdir()
    for migration in MIGRATIONS_DIR.glob("*.sql"):
        if migration.name < IDS_AS_UUIDS_SINCE:
            shutil.copy(migration, before_uuids)
    backend = server_backend(settings)
    try:
        for round_number in range(1, args.rounds + 1):
            for ids_as, folder in (("text", before_uuids), ("uuid", MIGRATIONS_DIR)):
                database = f"bench_{run}_{ids_as}"
                backend.query(f"DROP DATABASE IF EXISTS {database}")
                migrate(backend, database, folder)
                start_cpu, start = clickhouse_cpu_s(watch), time.perf_counter()
                for body in encoded[ids_as]:
                    post(settings, f"INSERT INTO {database}.raw_events FORMAT RowBinary", body)
                inserts_cpu, inserts_s = clickhouse_cpu_s(watch) - start_cpu, time.perf_counter() - start
                merging = f"SELECT count() FROM system.merges WHERE database = '{database}'"
                quiet_since = inserted = time.perf_counter()
                # Merges are scheduled a little after the parts they merge: settled once none ran for QUIET_S.
                while time.perf_counter() - quiet_since < QUIET_S and time.perf_counter() - inserted < MERGES_WAIT_S:
                    if backend.query(merging).rows[0][0]:
                        quiet_since = time.perf_counter()
                    time.sleep(0.2)
                total_cpu = clickhouse_cpu_s(watch) - start_cpu
                parts, stored = backend.query(
                    "SELECT count(), sum(bytes_on_disk) FROM system.parts "
                    f"WHERE database = '{database}' AND table = 'raw_events' AND active"
                ).rows[0]
                print(f"round {round_number}, ids as {ids_as:<4}: inserts {inserts_cpu / args.rows * 1e6:.2f} us/row "
                      f"({args.rows / inserts_s:,.0f} rows/s), inserts and merges {total_cpu / args.rows * 1e6:.2f} "
                      f"us/row; {parts} parts, {stored / args.rows:.0f} bytes/row on disk", flush=True)  # fmt: skip
                backend.query(f"DROP DATABASE IF EXISTS {database}")
    finally:
        for ids_as in ("text", "uuid"):
            backend.query(f"DROP DATABASE IF EXISTS bench_{run}_{ids_as}")
        shutil.rmtree(before_uuids.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
