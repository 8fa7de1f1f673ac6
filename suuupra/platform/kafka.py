"""Apache Kafka 4.x in KRaft mode: one node that is broker and controller, transactions enabled."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka.admin import AdminClient

from suuupra.platform.base import Component, Health, PlatformError, PortSpec

LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_dir}/kafka-server.log
appender.file.filePattern = {log_dir}/kafka-server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""


class Kafka(Component):
    name = "kafka"

    @property
    def jars(self) -> Path:
        return self.settings.paths.lib_dir / "kafka"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "data"

    def ports(self) -> Sequence[PortSpec]:
        kafka = self.settings.kafka
        return [PortSpec(kafka.port, "kafka.port"), PortSpec(kafka.controller_port, "kafka.controller_port")]

    def is_installed(self) -> bool:
        return any(self.jars.glob("kafka_2.13-*.jar"))

    def install_hint(self) -> str:
        return f"{self.settings.platform.maven} -f {self.settings.paths.maven_pom} package"

    def _server_properties(self) -> str:
        kafka = self.settings.kafka
        broker = f"127.0.0.1:{kafka.port}"
        controller = f"127.0.0.1:{kafka.controller_port}"
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "3",
            # One node: every internal topic must accept replication 1 or transactions never start.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Flink's KafkaSink asks for 1 h transactions; the broker default caps them at 15 min.
            "transaction.max.timeout.ms": str(60 * 60 * 1000),
            "group.initial.rebalance.delay.ms": "0",
            # Record timestamps are event times, and the simulator's clock runs ahead of the wall clock: the
            # 1 h default would refuse its batches. Production brokers keep their own limit.
            "log.message.timestamp.after.max.ms": str(7 * 24 * 3_600_000),
            "auto.create.topics.enable": "false",
            "log.retention.check.interval.ms": "300000",
        }
        return "".join(f"{key}={value}\n" for key, value in properties.items())

    def prepare(self) -> None:
        self.log_dirs.mkdir(parents=True, exist_ok=True)
        log_dir = self.settings.paths.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._server_properties())
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES.format(log_dir=log_dir))
        if (self.log_dirs / "meta.properties").exists():
            return
        cluster_id = self._storage_tool("random-uuid").strip().splitlines()[-1]
        self._storage_tool("format", "--standalone", "-t", cluster_id, "-c", str(self.config_file))

    def _storage_tool(self, *args: str) -> str:
        result = subprocess.run(
            [*self._java(), "kafka.tools.StorageTool", *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise PlatformError(f"kafka storage tool {args[0]} failed: {result.stderr.strip()[-800:]}")
        return result.stdout

    def _java(self) -> list[str]:
        return [
            self.settings.platform.java,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.jars}/*",
        ]

    def command(self) -> list[str]:
        heap = self.settings.kafka.heap
        java, *rest = self._java()
        return [java, f"-Xmx{heap}", "-Xms256m", "-XX:+UseG1GC", *rest, "kafka.Kafka", str(self.config_file)]

    def health(self) -> Health:
        # log_level 0: a probe of a broker still starting must not flood the console with connect errors.
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.settings.kafka.port}", "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception as error:  # librdkafka raises KafkaException with varying codes
            return Health(False, f"metadata request failed: {error}")
        if not metadata.brokers:
            return Health(False, "no broker registered yet")
        return Health(True, f"{len(metadata.brokers)} broker, {len(metadata.topics)} topics")
