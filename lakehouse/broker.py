"""The embedded Kafka-API broker: Apache Kafka in KRaft mode (broker + controller, one node).

Jars are fetched once from Maven Central with ``mvn`` (``deployments/local-broker/pom.xml``) into a
cache; data lives under ``<home>/broker/`` and survives a stop/start. Production points
``LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS`` at Redpanda instead, and nothing here runs.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

POM = Path(__file__).resolve().parent.parent / "deployments" / "local-broker" / "pom.xml"


class BrokerError(RuntimeError):
    """A problem a user can fix, said in one line."""


def _kafka_version() -> str:
    text = POM.read_text()
    return text.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    def pid(self) -> int | None:
        """The running broker's process id, or None."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

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
        if self.pid() is not None:
            self.wait_ready(timeout_s)
            return self.bootstrap
        for port in (self.port, self.controller_port):
            if not port_is_free(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is taken by another program: stop it "
                    "or set LAKEHOUSE_BROKER_PORT / LAKEHOUSE_BROKER_CONTROLLER_PORT"
                )
        jars = ensure_jars(self.cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not (self.data_dir / "data" / "meta.properties").exists():
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
        log = self.log_file.open("ab")
        proc = subprocess.Popen(
            [
                "java",
                f"-Xmx{self.heap}",
                f"-Xms{self.heap}",
                "-XX:+UseG1GC",
                "-cp",
                f"{jars}/*",
                "kafka.Kafka",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid_file.write_text(str(proc.pid))
        try:
            self.wait_ready(timeout_s, proc=proc)
        except BrokerError:
            self.stop()
            raise
        from ingest.topics import ensure_topics

        ensure_topics({"bootstrap.servers": self.bootstrap}, self.partitions)
        return self.bootstrap

    def wait_ready(self, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout_s
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": "0"})
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited at start (code {proc.returncode}); see {self.log_file}"
                )
            try:
                meta = admin.list_topics(timeout=2)
                if meta.brokers:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.3)
        raise BrokerError(
            f"the broker did not answer within {timeout_s:.0f} s; see {self.log_file}"
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL); return whether one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _reap(pid: int) -> None:
    """Collect a child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def end_offsets(client_config: dict[str, str], topics: tuple[str, ...]) -> dict[str, int]:
    """Sum of the high watermarks of each topic's partitions (messages ever written)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**client_config, "group.id": "lakehouse-status", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(timeout=10)
        totals: dict[str, int] = {}
        for topic in topics:
            parts = meta.topics.get(topic)
            if parts is None or parts.error is not None:
                continue
            totals[topic] = sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in parts.partitions
            )
        return totals
    finally:
        consumer.close()


def from_settings() -> LocalBroker:
    """The embedded broker described by the settings."""
    from settings import get_settings

    s = get_settings()
    return LocalBroker(
        data_dir=s.broker_dir,
        cache_dir=s.cache_dir,
        port=s.broker_port,
        controller_port=s.broker_controller_port,
        heap=s.broker_heap,
        partitions=s.topic_partitions,
    )
