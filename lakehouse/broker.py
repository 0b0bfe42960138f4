"""The embedded Kafka-API broker: Apache Kafka in KRaft mode (broker + controller, one node).

Jars are fetched once from Maven Central with ``mvn`` (``deployments/local-broker/pom.xml``) into a
cache; data lives under ``<home>/broker/`` and survives a stop/start. The process is supervised
like every other part of the stack (``lakehouse.supervisor``). Production points
``LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS`` at Redpanda instead, and nothing here runs.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from ingest.topics import broker_probe, ensure_topics
from lakehouse import supervisor
from settings import get_settings

POM = Path(__file__).resolve().parent.parent / "deployments" / "local-broker" / "pom.xml"


class BrokerError(supervisor.StackError):
    """A problem a user can fix, said in one line."""


def _kafka_version() -> str:
    text = POM.read_text()
    return text.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0]


def ensure_jars(cache_dir: Path) -> Path:
    """The folder of the broker's jars, fetched with Maven on first use."""
    return fetch_jars(
        POM,
        cache_dir / f"kafka-{_kafka_version()}",
        "the local broker",
        "or set LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS to an existing broker",
    )


def fetch_jars(pom: Path, jars: Path, what: str, otherwise: str, transitive: bool = True) -> Path:
    """``jars``, filled once with the dependencies of ``pom`` by ``mvn`` from Maven Central."""
    if (jars / ".complete").exists():
        return jars
    if shutil.which("java") is None:
        raise BrokerError(
            f"Java 17+ is needed for {what}: install a JDK (apt-get install "
            f"openjdk-17-jre-headless) {otherwise}"
        )
    if shutil.which("mvn") is None:
        raise BrokerError(
            f"Maven (mvn) is needed once to fetch the jars of {what}: apt-get install maven, "
            f"{otherwise}"
        )
    jars.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={jars}",
        "-DincludeScope=runtime",
        f"-DexcludeTransitive={str(not transitive).lower()}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise BrokerError(
            f"could not fetch the jars of {what} from Maven Central: " + " | ".join(tail)
        )
    (jars / ".complete").touch()
    return jars


@dataclass
class LocalBroker:
    """One single-node KRaft broker with its data in ``data_dir``."""

    data_dir: Path
    cache_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    partitions: int = 3

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def service(self) -> supervisor.Service:
        """The broker's process: ``kafka.Kafka`` on this data folder's config."""
        jars = self.cache_dir / f"kafka-{_kafka_version()}"
        argv = ("java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC")
        return supervisor.Service(
            "broker",
            (*argv, "-cp", f"{jars}/*", "kafka.Kafka", str(self.data_dir / "server.properties")),
            self.pid_file,
            self.log_file,
            ready=broker_probe({"bootstrap.servers": self.bootstrap}),
            port=self.port,
            extra_ports=(self.controller_port,),
            port_hint="set LAKEHOUSE_BROKER_PORT / LAKEHOUSE_BROKER_CONTROLLER_PORT",
            marker="kafka.Kafka",
            cwd=self.data_dir,
        )

    def pid(self) -> int | None:
        """The running broker's process id, or None."""
        return supervisor.running_pid(self.service)

    def _write_config(self) -> Path:
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data_dir / 'data'}",
                    f"num.partitions={self.partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=-1",
                    "",
                ]
            )
        )
        return config

    def _java(self, jars: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["java", "-cp", f"{jars}/*", *args], capture_output=True, text=True, **kwargs
        )

    def start(self, timeout_s: float = 90.0) -> str:
        """Start (or find running) and wait until it answers; return the bootstrap address."""
        service, fresh = self.service, self.pid() is None
        try:
            if fresh:
                supervisor.check_ports(service)
                self._prepare()
            supervisor.start(service, timeout_s)
        except supervisor.StackError as exc:
            raise BrokerError(str(exc)) from exc
        if fresh:
            ensure_topics({"bootstrap.servers": self.bootstrap}, self.partitions)
        return self.bootstrap

    def _prepare(self) -> None:
        """Jars fetched, the config written and, on first use, the storage formatted."""
        jars = ensure_jars(self.cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if (self.data_dir / "data" / "meta.properties").exists():
            return
        fmt = self._java(
            jars,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            # = form: a random id may start with "-", which a separate argument would not take
            f"--cluster-id={_cluster_id()}",
            "-c",
            str(config),
        )
        if fmt.returncode != 0:
            raise BrokerError("could not format the broker's storage: " + fmt.stderr[-300:])

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL); return whether one was running."""
        return supervisor.stop(self.service, timeout_s)


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def from_settings() -> LocalBroker:
    """The embedded broker described by the settings."""
    s = get_settings()
    return LocalBroker(
        data_dir=s.broker_dir,
        cache_dir=s.cache_dir,
        port=s.broker_port,
        controller_port=s.broker_controller_port,
        heap=s.broker_heap,
        partitions=s.topic_partitions,
    )
