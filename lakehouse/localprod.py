"""The production shape on one machine, for the tests and the benchmark: a throwaway PostgreSQL
cluster and s3proxy (a real S3 API server over a folder), started on free ports.

PostgreSQL comes from Debian's ``postgresql`` package (server binaries under
``/usr/lib/postgresql/<version>/bin``, installed by ``make test``); run as root, the cluster runs as
the ``postgres`` user, so its folder must be one that user can reach (a fresh folder under
``/tmp``, see :func:`scratch_folder`). s3proxy and the jars Spark needs are fetched once from
Maven Central (``deployments/production-shape/pom.xml``) into the cache, like the broker's.

:meth:`ProductionShape.environment` gives the ``LAKEHOUSE_*`` variables that point the lakehouse
at them: the Iceberg catalog, MLflow's store and Prefect's database in PostgreSQL, the warehouse and
MLflow's artifacts on S3. Nothing here is used by the lakehouse itself.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from lakehouse import supervisor
from lakehouse.broker import BrokerError, fetch_jars
from lakehouse.supervisor import Service, StackError, free_port

POM = Path(__file__).resolve().parent.parent / "deployments" / "production-shape" / "pom.xml"
DATABASES = ("catalog", "mlflow", "prefect")
BUCKETS = ("lakehouse", "mlflow")
REGION = "us-east-1"


class ServerError(RuntimeError):
    """A server of the production shape could not start; the message says why."""


def ensure_jars(cache_dir: Path) -> Path:
    """The folder of s3proxy's and Spark's jars, fetched with Maven on first use."""
    text = POM.read_text()
    versions = "-".join(
        text.split(f"<{name}>", 1)[1].split("<", 1)[0]
        for name in ("s3proxy.version", "iceberg.version", "postgresql.version")
    )
    return fetch_jars(
        POM,
        cache_dir / f"production-shape-{versions}",
        "the production-shape test servers",
        "(make prod-jars)",
        transitive=False,
    )


def postgres_bin() -> Path:
    """Debian's PostgreSQL server binaries (the newest installed version)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda path: int(path.split("/")[4]))
    if not found:
        raise ServerError("PostgreSQL's server is not installed: apt-get install postgresql")
    return Path(found[-1]).parent


def scratch_folder(prefix: str = "lakehouse-prod-") -> Path:
    """A fresh folder under the system temp folder that the ``postgres`` user can traverse."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    return folder


def _as_postgres(argv: list[str]) -> list[str]:
    """``argv`` as the ``postgres`` user when we are root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class LocalPostgres:
    """One throwaway cluster in ``folder`` on 127.0.0.1:``port``, trust authentication."""

    folder: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def jdbc_url(self, database: str) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{database}"

    def start(self, databases: tuple[str, ...] = DATABASES) -> None:
        """initdb, start, create the databases; ready when this returns."""
        bin_dir = postgres_bin()
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U",
                   "postgres", "-E", "UTF8", "--no-sync"])  # fmt: skip
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                   str(self.folder / "postgres.log"), "-o", options, "-w", "start"])  # fmt: skip
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as db:
            for name in databases:
                db.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            pg_ctl = str(postgres_bin() / "pg_ctl")
            self._run([pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(_as_postgres(argv), capture_output=True, text=True)
        if result.returncode != 0:
            log = self.folder / "postgres.log"
            tail = log.read_text()[-800:] if log.exists() else ""
            raise ServerError(f"{Path(argv[0]).name} failed: {result.stderr[-800:]}{tail}")


@dataclass
class LocalS3:
    """s3proxy on 127.0.0.1:``port`` over ``folder`` (a bucket is a folder in it)."""

    folder: Path
    port: int
    jars: Path
    access_key: str = "lakehouse"
    secret_key: str = "lakehouse-local-only"  # a throwaway server on the loopback interface

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def catalog_properties(self) -> dict[str, str]:
        """pyiceberg's ``s3.*`` properties for this server."""
        return {
            "s3.endpoint": self.endpoint,
            "s3.access-key-id": self.access_key,
            "s3.secret-access-key": self.secret_key,
            "s3.region": REGION,
            "s3.path-style-access": "true",
        }

    @property
    def service(self) -> Service:
        """s3proxy as a process of the one supervisor (``lakehouse.supervisor``)."""
        jar = next(self.jars.glob("s3proxy-*-jar-with-dependencies.jar"))
        properties = self.folder / "s3proxy.properties"
        return Service(
            "s3proxy",
            ("java", "-Xmx256m", "-jar", str(jar), "--properties", str(properties)),
            self.folder / "s3proxy.pid",
            self.folder / "s3proxy.log",
            ready=self._answers,
            port=self.port,
            marker="s3proxy",
        )

    def start(self, buckets: tuple[str, ...] = BUCKETS, timeout_s: float = 60.0) -> None:
        for bucket in buckets:
            (self.folder / "buckets" / bucket).mkdir(parents=True, exist_ok=True)
        (self.folder / "s3proxy.properties").write_text(
            f"s3proxy.endpoint={self.endpoint}\ns3proxy.authorization=aws-v2-or-v4\n"
            f"s3proxy.identity={self.access_key}\ns3proxy.credential={self.secret_key}\n"
            f"jclouds.provider=filesystem\njclouds.filesystem.basedir={self.folder / 'buckets'}\n"
        )
        try:
            supervisor.start(self.service, timeout_s)
        except StackError as exc:
            raise ServerError(f"s3proxy did not start: {exc}") from exc

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint, timeout=1).close()
        except urllib.error.HTTPError:
            return True  # an S3 error answer (403 without credentials): it serves
        except OSError:
            return False
        return True

    def stop(self) -> None:
        supervisor.stop(self.service)


@dataclass
class ProductionShape:
    """PostgreSQL and S3 running; what the lakehouse needs to use them."""

    postgres: LocalPostgres
    s3: LocalS3
    jars: Path

    def environment(self) -> dict[str, str]:
        """The ``LAKEHOUSE_*`` variables of the production shape on these servers."""
        return {
            "LAKEHOUSE_CATALOG_URI": self.postgres.url("catalog"),
            "LAKEHOUSE_WAREHOUSE": "s3://lakehouse/warehouse",
            "LAKEHOUSE_CATALOG_PROPERTIES": json.dumps(self.s3.catalog_properties()),
            "LAKEHOUSE_MLFLOW_TRACKING_URI": self.postgres.url("mlflow"),
            "LAKEHOUSE_MLFLOW_ARTIFACTS": "s3://mlflow/artifacts",
            "LAKEHOUSE_PREFECT_DATABASE_URL": self.postgres.url("prefect", driver="asyncpg"),
        }


@contextmanager
def production_shape(cache_dir: Path, folder: Path | None = None) -> Iterator[ProductionShape]:
    """Start PostgreSQL and s3proxy on free ports in ``folder`` (a fresh scratch folder by
    default, removed afterwards); stop them on the way out."""
    try:
        jars = ensure_jars(cache_dir)
    except BrokerError as exc:
        raise ServerError(str(exc)) from exc
    root = folder or scratch_folder()
    postgres = LocalPostgres(root / "postgres", free_port())
    s3 = LocalS3(root / "s3", free_port(), jars)
    try:
        postgres.start()
        s3.start()
        yield ProductionShape(postgres, s3, jars)
    finally:
        s3.stop()
        postgres.stop()
        if folder is None:
            shutil.rmtree(root, ignore_errors=True)
