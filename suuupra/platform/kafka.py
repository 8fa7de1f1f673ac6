"""Apache Kafka 4.x in KRaft mode: one node that is broker and controller, transactions enabled; or, with the
setting `kafka.brokers` (`suuupra platform up --brokers 3`), that many such nodes forming one cluster: a static
controller quorum of all of them, internal topics replicated like the domain topics."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka.admin import AdminClient

from suuupra.platform.base import Component, Health, PlatformError, PortSpec
from suuupra.settings import Settings

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
    """One node of the local cluster. Node 1 is `kafka` (data in `kafka/`), the others `kafka-2`, `kafka-3`...; node N
    listens on `kafka.port` + 2(N-1) and its controller on `kafka.controller_port` + 2(N-1)."""

    def __init__(self, settings: Settings, node: int = 1) -> None:
        self.node = node
        self.name = "kafka" if node == 1 else f"kafka-{node}"
        super().__init__(settings)

    @property
    def broker_port(self) -> int:
        return self.settings.kafka.node_port(self.node)

    @property
    def controller_port(self) -> int:
        return self.settings.kafka.node_controller_port(self.node)

    @property
    def cluster_id_file(self) -> Path:
        return self.settings.paths.data_dir / "kafka-cluster.id"

    @property
    def formatted_for_file(self) -> Path:
        return self.log_dirs / "suuupra-brokers"

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
        return [PortSpec(self.broker_port, "kafka.port"), PortSpec(self.controller_port, "kafka.controller_port")]

    def is_installed(self) -> bool:
        return any(self.jars.glob("kafka_2.13-*.jar"))

    def install_hint(self) -> str:
        return f"{self.settings.platform.maven} -f {self.settings.paths.maven_pom} package"

    def _server_properties(self) -> str:
        kafka = self.settings.kafka
        broker = f"127.0.0.1:{self.broker_port}"
        controller = f"127.0.0.1:{self.controller_port}"
        nodes = range(1, kafka.brokers + 1)
        # Internal topics replicated like the domain topics: with one node every one must accept replication 1, or
        # transactions never start.
        replication, min_insync = str(kafka.replication_factor), str(kafka.min_insync_replicas)
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(self.node),
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "3",
            "default.replication.factor": replication,
            "min.insync.replicas": min_insync,
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_insync,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_insync,
            # Flink's KafkaSink asks for 1 h transactions; the broker default caps them at 15 min.
            "transaction.max.timeout.ms": str(60 * 60 * 1000),
            "group.initial.rebalance.delay.ms": "0",
            # Record timestamps are event times, and the simulator's clock runs ahead of the wall clock: the
            # 1 h default would refuse its batches. Production brokers keep their own limit.
            "log.message.timestamp.after.max.ms": str(7 * 24 * 3_600_000),
            "auto.create.topics.enable": "false",
            "log.retention.check.interval.ms": "300000",
        }
        if kafka.brokers == 1:
            properties["controller.quorum.bootstrap.servers"] = controller
        else:
            # A static quorum of every node: formatted alike, no node is special at start.
            properties["controller.quorum.voters"] = ",".join(
                f"{node}@127.0.0.1:{kafka.node_controller_port(node)}" for node in nodes
            )
        return "".join(f"{key}={value}\n" for key, value in properties.items())

    def prepare(self) -> None:
        self.log_dirs.mkdir(parents=True, exist_ok=True)
        log_dir = self.settings.paths.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._server_properties())
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES.format(log_dir=log_dir))
        brokers = self.settings.kafka.brokers
        if (self.log_dirs / "meta.properties").exists():
            # Data formatted before the file existed is a single node's.
            formatted_for = int(self.formatted_for_file.read_text()) if self.formatted_for_file.exists() else 1
            if formatted_for != brokers:
                raise PlatformError(
                    f"{self.name}: its data in {self.log_dirs} belongs to a cluster of {formatted_for} broker(s), not "
                    f"{brokers}. Keep it with `suuupra platform up --brokers {formatted_for}`, or run `suuupra "
                    f"platform down` and remove {self.settings.paths.data_dir}/kafka* (its topics are lost) to change."
                )
            return
        if not self.cluster_id_file.exists():
            self.cluster_id_file.write_text(self._storage_tool("random-uuid").strip().splitlines()[-1])
        cluster_id = self.cluster_id_file.read_text().strip()
        quorum = ["--standalone"] if brokers == 1 else []
        self._storage_tool("format", *quorum, "-t", cluster_id, "-c", str(self.config_file))
        self.formatted_for_file.write_text(str(brokers))

    def _storage_tool(self, *args: str) -> str:
        timeout = self.settings.platform.startup_timeout_s
        try:
            result = subprocess.run([*self._java(), "kafka.tools.StorageTool", *args], capture_output=True, text=True,
                                    check=False, timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired as error:
            raise PlatformError(f"kafka storage tool {args[0]} did not finish within {timeout:.0f} s") from error
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
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.broker_port}", "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception as error:  # librdkafka raises KafkaException with varying codes
            return Health(False, f"metadata request failed: {error}")
        if self.node not in metadata.brokers:
            return Health(False, "not registered with the cluster yet")
        brokers = len(metadata.brokers)
        return Health(True, f"{brokers} broker{'s' if brokers > 1 else ''}, {len(metadata.topics)} topics")


def kafka_nodes(settings: Settings) -> list[Kafka]:
    return [Kafka(settings, node) for node in range(1, settings.kafka.brokers + 1)]
