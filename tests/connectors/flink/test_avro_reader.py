"""The jobs' record reader (connectors/jvm ConfluentAvroReader) against a registry that counts what it is asked: a
schema id the registry refused is not asked about again for every record that carries it. A stub, not Apicurio: the
real registry cannot say how often it was asked, nor serve a schema that is no Avro record under an id; the jobs'
hostile-input and at-scale tests read through Apicurio."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import fastavro
import pytest
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from jobs.runtime import flink_configuration
from suuupra.settings import Settings

KNOWN_ID, UNKNOWN_ID, NOT_A_RECORD_ID, JSON_SCHEMA_ID, BAD_DEFAULT_ID = 5, 77, 8, 9, 10
BAD_DEFAULT = {"type": "record", "name": "Bad", "fields": [{"name": "n", "type": "long", "default": "many"}]}
SCHEMA = {"type": "record", "name": "Ping", "namespace": "test", "fields": [{"name": "n", "type": "long"}]}


class _Registry(BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        body: dict[str, Any]
        if self.path == f"/schemas/ids/{KNOWN_ID}":
            status, body = 200, {"schema": json.dumps(SCHEMA)}
        elif self.path == f"/schemas/ids/{NOT_A_RECORD_ID}":
            status, body = 200, {"schema": json.dumps("long")}
        elif self.path == f"/schemas/ids/{BAD_DEFAULT_ID}":
            status, body = 200, {"schema": json.dumps(BAD_DEFAULT)}
        elif self.path == f"/schemas/ids/{JSON_SCHEMA_ID}":
            status, body = 200, {"schema": json.dumps({"type": "object"}), "schemaType": "JSON"}
        else:
            status, body = 404, {"error_code": 40403, "message": "Schema not found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    _Registry.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def jvm(settings: Settings) -> Any:
    from pyflink.java_gateway import get_gateway

    # A table environment puts the job's jars (connectors/jvm among them) on the gateway's class path.
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(settings, "avro-reader-test"))
    StreamTableEnvironment.create(env)
    return get_gateway().jvm


def _record(schema_id: int) -> bytearray:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, SCHEMA, {"n": 42})
    return bytearray(bytes([0]) + schema_id.to_bytes(4, "big") + body.getvalue())


def test_a_refused_schema_id_is_asked_about_once_not_for_every_record(jvm: Any, registry_url: str) -> None:
    reader = jvm.com.suuupra.flink.avro.ConfluentAvroReader(registry_url)
    for _ in range(50):
        assert not reader.read(_record(UNKNOWN_ID))
        assert reader.errorCode() == "unknown_schema"
        assert reader.error() == f"schema id {UNKNOWN_ID} is not in the registry"
    assert _Registry.asked == [f"/schemas/ids/{UNKNOWN_ID}"]
    # Another id is asked about, and read once the registry has it.
    assert reader.read(_record(KNOWN_ID))
    assert reader.record().get("n") == 42
    assert reader.read(_record(KNOWN_ID))
    assert _Registry.asked == [f"/schemas/ids/{UNKNOWN_ID}", f"/schemas/ids/{KNOWN_ID}"]


def test_an_unknown_id_is_asked_about_again_once_the_interval_has_passed(jvm: Any, registry_url: str) -> None:
    recheck_s = 2.0  # two reads in a row take far less, even on a loaded machine
    reader = jvm.com.suuupra.flink.avro.ConfluentAvroReader(registry_url, int(recheck_s * 1e9))
    assert not reader.read(_record(UNKNOWN_ID))
    assert not reader.read(_record(UNKNOWN_ID))
    assert len(_Registry.asked) == 1
    time.sleep(recheck_s + 0.2)
    # It may have been registered since.
    assert not reader.read(_record(UNKNOWN_ID))
    assert not reader.read(_record(UNKNOWN_ID))
    assert _Registry.asked == [f"/schemas/ids/{UNKNOWN_ID}"] * 2


@pytest.mark.parametrize(
    ("schema_id", "code", "reason"),
    [
        (NOT_A_RECORD_ID, "incompatible_schema", f"schema id {NOT_A_RECORD_ID} is not an Avro record schema"),
        (JSON_SCHEMA_ID, "unknown_schema", f"schema id {JSON_SCHEMA_ID} is JSON, not Avro"),
        (BAD_DEFAULT_ID, "incompatible_schema", f"schema id {BAD_DEFAULT_ID} does not parse as Avro: "),
    ],
)
def test_an_id_whose_schema_is_no_avro_record_is_never_asked_about_again(
    jvm: Any, registry_url: str, schema_id: int, code: str, reason: str
) -> None:
    """A registered id's schema never changes: however long it has been, the answer would be the same."""
    reader = jvm.com.suuupra.flink.avro.ConfluentAvroReader(registry_url, int(0.05 * 1e9))
    for _ in range(3):
        assert not reader.read(_record(schema_id))
        assert reader.errorCode() == code
        assert reader.error().startswith(reason)
        time.sleep(0.1)
    assert _Registry.asked == [f"/schemas/ids/{schema_id}"]
