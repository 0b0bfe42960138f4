"""Benchmark: the whole pipeline, broker → bronze → silver → gold, and webhook-to-silver latency.

    .venv/bin/python bench/pipeline.py [--events 1000000] [--shapes embedded,production]
                                       [--skip-scan] [--profile FILE]

For each shape (``--shapes``, in order; default ``embedded``) it starts a private broker (free
ports, a temporary folder, jars from ``<repo>/.lakehouse/cache``) and a temporary
``LAKEHOUSE_HOME``; the ``production`` shape also starts PostgreSQL and s3proxy
(``lakehouse.localprod``: ``make postgresql prod-jars``) and puts the Iceberg catalog and MLflow's
store in PostgreSQL, the warehouse and MLflow's artifacts on S3. Then, per shape:

1. **load**: writes ``--events`` simulated deliveries (the seeded realistic mix, 1 % malformed)
   straight to the topics with the simulator's direct writer (a child process);
2. **drain**: runs the warm micro-batch loop (``run_loop`` of ``flows.loop``, gates on) until idle
   and prints events/s per stage (rows in / seconds of the stage in the batches with work), end to
   end (events / wall time until the last batch with work) and the peak RSS of the process that
   drained (``ru_maxrss``), its page faults and the broker's CPU. The loop runs as deployed: its
   lanes overlap (the broker reader's child process reads ahead, bronze commits, silver promotes,
   gold catches up every ``--gold-every`` s; ``--sequential`` runs them one after another, so
   each stage's CPU is its own). Gold scores with champions trained and registered beforehand on
   a labelled simulated history (``--history-days``, ``--customers``; ``--no-models`` skips
   them, and gold then writes null scores);
3. **latency**: serves the receiver (uvicorn child), sends signed webhooks at ``--rate`` for
   ``--seconds`` while the same warm loop runs (batches of at most ``--loop-seconds``, as one
   deployment run of ``--seconds`` + ``--tail`` s), and a child process polls
   ``SELECT … FROM silver.payment_events`` through ``warehouse.connect()`` every ``--poll`` s
   (default 1 s: a poll costs ~0.3 CPU-s, which a 2-core machine feels);
   prints p50/p95 of (first poll that saw the row) − (bronze ``received_at``), and the same from
   silver's snapshot commit times as a cross-check;
4. **scan**: runs ``bench/duckdb_scan.py`` (10,000,000 silver rows) unless ``--skip-scan``
   (embedded shape only).

With several shapes, a last table sets their end-to-end events/s and receipt → silver latency
side by side (same machine, same run).

The bulk stream starts four days ago, the live one three days and an hour ago: the simulator's
default start (2024-07-01) is outside the 400-day event-time window of the row rules, and its
stories reach three days past their start (bank debits settle then), so a stream started later
would lose those events to the simulator's stop at now (or, sent, to ``INVALID_EVENT_TIME``).
The machine's load average is sampled throughout (the benchmark's own processes share the
cores); if other work was running when it started, the summary says so.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from flows.loop import GOLD_EVERY_SECONDS, run_loop
from flows.report import RunTotals
from lakehouse.broker import LocalBroker
from lakehouse.supervisor import free_port
from settings import get_settings
from tests.support.patching import wrap_everywhere

# The data path (flows.stages, warehouse, ml, quality, transforms, simulator, pyarrow) is imported
# inside the phase or child worker that uses it: this script re-runs itself as the load, train,
# send and poll workers, which run beside the measured loop on two cores, and importing it all
# costs each of them 4.9 CPU-s against 0.5 CPU-s for the imports above (measured with `time
# python -c "import …"` on both sets). Comments marked DATA PATH below point here.

REPO = Path(__file__).resolve().parent.parent

SEED = 20261125
MALFORMED = 0.01
GOAL_EPS = 25_000
GOAL_P95_S = 15.0
GOAL_SCAN_S = 1.0
SHAPES = ("embedded", "production")
#: The benchmark's own receiver accepts this secret only (no receiver runs without one).
SECRET = "whsec_bench_pipeline_only"
STAGES = ("bronze", "silver", "gold.payment_scores", "gold.merchant_daily")


def stream_start() -> datetime:
    """Where simulated streams start: four days ago (see the module docstring)."""
    return (datetime.now(UTC) - timedelta(days=4)).replace(microsecond=0)


# --- load average --------------------------------------------------------------------------------
class LoadSampler:
    """The 1-minute load average every ``every`` seconds, kept per named phase."""

    def __init__(self, every: float = 2.0) -> None:
        self.every, self.phase, self.samples = every, "setup", {}
        self.prefix = ""  # the shape being measured, in front of every phase name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.setdefault(self.phase, []).append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()

    def start(self, phase: str) -> None:
        self.phase = f"{self.prefix}{phase}"

    def summary(self, phase: str) -> str:
        values = self.samples.get(f"{self.prefix}{phase}") or [os.getloadavg()[0]]
        return f"{statistics.fmean(values):.1f} (max {max(values):.1f})"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of another process (all its threads) so far; 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def page_faults() -> int:
    """Minor page faults of this process so far (fresh memory costs one per 4 KiB page)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# --- where the time goes -------------------------------------------------------------------------
class Breakdown:
    """Wall and CPU seconds (all threads of the process) of named steps inside the stages.

    Wraps the functions the stages call, wherever they were imported (``wrap_everywhere``).
    Nested steps count in their parents too."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.installed = False

    def reset(self) -> None:
        self.wall.clear()
        self.cpu.clear()
        self.calls.clear()

    def wrap(self, owner: Any, name: str, label: Any) -> None:
        def timing(inner: Any) -> Any:
            def timed(*args: Any, **kwargs: Any) -> Any:
                key = label(*args, **kwargs) if callable(label) else label
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return inner(*args, **kwargs)
                finally:
                    self.wall[key] = self.wall.get(key, 0.0) + time.perf_counter() - wall
                    self.cpu[key] = self.cpu.get(key, 0.0) + time.process_time() - cpu
                    self.calls[key] = self.calls.get(key, 0) + 1

            return timed

        wrap_everywhere(owner, name, timing)

    def install(self) -> None:
        if self.installed:  # a second shape in the same process: wrapped already
            return
        self.installed = True
        import ml.scoring  # DATA PATH: imported by the draining process only (see the top)
        import quality.contracts
        import quality.gates
        import transforms.events
        import transforms.payload
        import warehouse.io
        import warehouse.queries
        from flows import stages
        from ingest import reader_process

        def table(t: Any, *_: Any, **__: Any) -> str:
            return t.name()[-1] if isinstance(t.name(), tuple) else str(t.name())

        io = warehouse.io
        # the reader runs in a child process: this is the wait for its batch and the hand-over
        self.wrap(reader_process.ReaderProcess, "poll_batch", "bronze: poll_batch (from reader)")
        # every append, bronze's included, is one append_planned commit
        self.wrap(io, "append_planned", lambda t, *a, **k: f"append {table(t)}")
        self.wrap(io, "read_appended_since", lambda t, *a, **k: f"read_appended_since {table(t)}")
        self.wrap(io, "scan", lambda t, *a, **k: f"scan {table(t)}")
        self.wrap(io, "replace_partition", lambda t, *a, **k: f"replace_partition {table(t)}")
        queries = warehouse.queries
        self.wrap(transforms.events, "to_silver", "silver: to_silver")
        self.wrap(transforms.payload, "decode_events", "silver:   decode_events (JSON)")
        self.wrap(quality.contracts, "check_rows", "silver:   check_rows (Pandera)")
        self.wrap(queries, "seen_event_ids", "silver: seen_event_ids")
        self.wrap(queries, "unrecorded_quarantine", "silver: unrecorded_quarantine")
        self.wrap(quality.gates, "gate", lambda b, suite, *a, **k: f"gate {suite}")
        self.wrap(queries, "silver_since", "gold: history (silver_since)")
        self.wrap(ml.scoring, "score_events", "gold: score_events")
        self.wrap(stages, "rebuild_days", "gold: rebuild_days")

    def print(self, title: str) -> None:
        print(f"\n{title}: {'wall s':>8}{'CPU s':>8}{'calls':>7}")
        for key in sorted(self.wall, key=lambda k: -self.wall[k]):
            print(f"  {key:44}{self.wall[key]:8.2f}{self.cpu[key]:8.2f}{self.calls[key]:7}")


BREAKDOWN = Breakdown()
PIDS: dict[str, int | None] = {}  # other processes of the benchmark, for their CPU


# --- environment ---------------------------------------------------------------------------------
@contextmanager
def private_stack(folder: Path, shape: str = "embedded"):
    """A private broker and LAKEHOUSE_HOME (and for the production shape PostgreSQL and S3);
    yield the environment for child processes."""
    from lakehouse.localprod import production_shape  # DATA PATH (see the top)

    for name in list(os.environ):
        if name.startswith("LAKEHOUSE_"):
            del os.environ[name]
    broker = LocalBroker(
        data_dir=folder / "broker",
        cache_dir=REPO / ".lakehouse" / "cache",
        port=free_port(),
        controller_port=free_port(),
        heap="768m",
        partitions=3,
    )
    print("starting a private broker…", flush=True)
    started = time.perf_counter()
    broker.start()
    print(f"broker at {broker.bootstrap} in {time.perf_counter() - started:.1f} s", flush=True)
    os.environ["LAKEHOUSE_HOME"] = str(folder / "home")
    os.environ["LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
    os.environ["LAKEHOUSE_STRIPE_WEBHOOK_SECRETS"] = SECRET
    get_settings.cache_clear()
    PIDS["broker"] = broker.pid()
    try:
        with ExitStack() as servers:
            if shape == "production":
                print("starting PostgreSQL and s3proxy…", flush=True)
                started = servers.enter_context(production_shape(REPO / ".lakehouse" / "cache"))
                os.environ.update(started.environment())
            get_settings.cache_clear()
            yield {**os.environ, "PYTHONPATH": str(REPO)}
    finally:
        broker.stop()


def child(args: list[str], env: dict[str, str], folder: Path, **kw) -> subprocess.Popen:
    """This script (or a module) in a child process, run in ``folder`` (no stray .env)."""
    return subprocess.Popen([sys.executable, *args], env=env, cwd=folder, **kw)


def last_json(text: str) -> dict[str, Any]:
    line = next(x for x in reversed(text.splitlines()) if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


# --- 1. load -------------------------------------------------------------------------------------
def worker_load(events: int) -> None:
    """Child: write ``events`` deliveries to the topics with the direct writer."""
    from simulator import direct, stream  # DATA PATH: the load child's own (see the top)

    start = stream_start()

    def recent(n: int, seed: int = 0, **kw: Any):
        return stream.generate_payloads(n, seed, **{**kw, "start": start})

    # the pool's timeline starts four days ago (direct's own default, an hour ago, stops its
    # stories at now: bank debits settling three days later would be left out of the mix)
    direct.generate_payloads = recent
    config = get_settings().kafka_client_config()
    report = direct.load(
        events,
        SEED,
        config,
        malformed_fraction=MALFORMED,
        progress=lambda n: print(f"  loaded {n:,}", flush=True),
        progress_every=max(events // 5, 10_000),
    )
    result = {
        "written": report.written,
        "failed": sum(report.failed.values()),
        "errors": report.errors[:3],
        "elapsed_s": report.elapsed_s,
        "by_topic": dict(report.by_topic),
    }
    print("RESULT " + json.dumps(result), flush=True)


def load(events: int, env: dict[str, str], folder: Path) -> dict[str, Any]:
    print(f"\n== load: {events:,} simulated deliveries ({MALFORMED:.0%} malformed) ==", flush=True)
    proc = child(
        [__file__, "--worker", "load", "--events", str(events)],
        env,
        folder,
        stdout=subprocess.PIPE,
        text=True,
    )
    out = []
    for line in proc.stdout:  # type: ignore[union-attr]
        out.append(line)
        if not line.startswith("RESULT "):
            print(line, end="", flush=True)
    if proc.wait() != 0:
        sys.exit("the load failed")
    result = last_json("".join(out))
    if result["failed"] or result["written"] != events:
        sys.exit(f"the load wrote {result['written']:,} of {events:,}: {result['errors']}")
    print(
        f"load: {result['written']:,} in {result['elapsed_s']:.1f} s "
        f"({result['written'] / result['elapsed_s']:,.0f}/s)",
        flush=True,
    )
    return result


# --- 1b. models ----------------------------------------------------------------------------------
def worker_train(days: int, customers: int) -> None:
    """Child: train the three models on a labelled simulated history and register them as
    champions in the benchmark's MLflow store (``LAKEHOUSE_HOME``), as ``train-models`` does."""
    from models import silver_history  # bench/models.py; DATA PATH: the train child's (see the top)

    from ml.registry import register_model
    from ml.train import datasets, train_model

    started = time.perf_counter()
    history = silver_history(days, customers, seed=7)
    decisions = {}
    for kind, data in datasets(history).items():
        model = train_model(kind, data)
        decision = register_model(model)
        decisions[model.spec.name] = {"version": decision.version, "promoted": decision.promoted}
    result = {
        "events": history.height,
        "seconds": time.perf_counter() - started,
        "models": decisions,
    }
    print("RESULT " + json.dumps(result), flush=True)


def train(args: argparse.Namespace, env: dict[str, str], folder: Path) -> dict[str, Any]:
    print(
        f"\n== models: train and register on {args.history_days} days × {args.customers} "
        "customers of labelled history ==",
        flush=True,
    )
    proc = child(
        [
            __file__,
            "--worker",
            "train",
            "--history-days",
            str(args.history_days),
            "--customers",
            str(args.customers),
        ],
        env,
        folder,
        stdout=subprocess.PIPE,
        text=True,
    )
    out = proc.communicate()[0]
    if proc.returncode != 0:
        sys.exit("training the models failed")
    result = last_json(out)
    print(
        f"models: {sorted(result['models'])} registered as champions from "
        f"{result['events']:,} history events in {result['seconds']:.1f} s",
        flush=True,
    )
    return result


# --- 2. drain ------------------------------------------------------------------------------------
@dataclass
class Drain:
    warmup_s: float
    wall_s: float  # until the last batch with rows was committed
    wall_idle_s: float  # including the pass that found the topics idle
    cpu_s: float
    totals: Any
    peak_rss_mb: float
    broker_cpu_s: float
    page_faults: int
    batches: list[str] = field(default_factory=list)


def drain(args: argparse.Namespace) -> tuple[Any, Drain]:
    print(
        f"\n== drain: bronze → silver → gold, gates on, batches of ≤ {args.max_records:,} ==",
        flush=True,
    )
    started = time.perf_counter()
    from flows.context import warm_lakehouse  # DATA PATH (see the top)

    lh = warm_lakehouse()  # GE import and suites, catalog, tables: once per warm worker
    # what the first batch would import (seconds): a warm worker has paid it already
    import ml.scoring  # noqa: F401
    import quality.contracts  # noqa: F401
    import transforms.events  # noqa: F401

    lh.reader  # noqa: B018 - the consumer (its group join is still in the first batch)
    from ml.registry import load_champions

    loaded = [name for name, c in load_champions().items() if c is not None]  # MLflow, boosters
    if args.breakdown:
        BREAKDOWN.install()
    warmup = time.perf_counter() - started
    print(f"warm-up (GE import, suites, catalog, champions {loaded}): {warmup:.1f} s", flush=True)
    lines: list[str] = []
    last_work = [time.perf_counter()]

    def log(line: str) -> None:
        lines.append(line)
        if re.search(r" [1-9]\d*→", line):  # some stage had rows
            last_work[0] = time.perf_counter()  # end of the last batch that had rows
        print("  " + line, flush=True)

    profiler = cProfile.Profile() if args.profile else None
    cpu, started = cpu_seconds(), time.perf_counter()
    if profiler:
        profiler.enable()
    reports: list[Any] = []

    def call(fn: Any, *a: Any) -> Any:
        report = fn(*a)
        reports.append(report)  # lanes call from their threads: list.append is atomic
        return report

    broker_cpu, faults = proc_cpu_seconds(PIDS.get("broker")), page_faults()
    totals = run_loop(
        lh,
        max_records=args.max_records,
        max_seconds=5.0,
        until_idle=True,
        run_for_seconds=24 * 3600,
        gold_every_seconds=args.gold_every,
        pipelined=not args.sequential,
        call=call,
        log=log,
    )
    broker_cpu = proc_cpu_seconds(PIDS.get("broker")) - broker_cpu
    faults = page_faults() - faults
    # stage seconds of the reports that had rows: the final bronze pass that found the topics
    # idle waits out max_seconds, which is not the time of any event
    for stage in STAGES:
        totals.seconds[stage] = sum(r.seconds for r in reports if r.stage == stage and r.rows_in)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    work = last_work[0] - started
    if profiler:
        profiler.dump_stats(args.profile)
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        print(text.getvalue())
        print(f"profile written to {args.profile}")
    if args.breakdown:
        BREAKDOWN.print("drain, where the time went")
        BREAKDOWN.reset()
    return lh, Drain(warmup, work, wall, cpu, totals, peak_rss_mb(), broker_cpu, faults, lines)


def print_drain(events: int, d: Drain) -> None:
    t = d.totals
    print(f"\n{'stage':22}{'rows in':>11}{'rows out':>11}{'seconds':>9}{'events/s':>11}")
    for stage in STAGES:
        rows, secs = t.rows_in[stage], t.seconds[stage]
        print(
            f"{stage:22}{rows:11,}{t.rows_out[stage]:11,}{secs:9.1f}"
            f"{(rows / secs if secs else 0):11,.0f}"
        )
    print(
        f"end to end: {events:,} events in {d.wall_s:.1f} s wall = {events / d.wall_s:,.0f}/s "
        f"({d.cpu_s:.1f} CPU-s of this process, {d.cpu_s / events * 1e6:.0f} µs/event; "
        f"{t.batches} batches; warm-up {d.warmup_s:.1f} s not included; "
        f"{d.wall_idle_s:.1f} s with the final pass that found the topics idle)"
    )
    print(
        f"quarantined {sum(t.quarantined.values()):,} {dict(t.quarantined)}; duplicates "
        f"{t.duplicates:,}; not modelled {t.not_modelled:,}; gates "
        f"{ {k: v['success'] for k, v in t.gates.items()} }; models without champion "
        f"{sorted(t.missing_models)}"
    )
    print(
        f"peak RSS of the draining process: {d.peak_rss_mb:,.0f} MB ({d.page_faults:,} page "
        f"faults while draining); the broker used {d.broker_cpu_s:.1f} CPU-s meanwhile"
    )


# --- 3. latency ----------------------------------------------------------------------------------
def worker_send(url: str, rate: float, seconds: float) -> None:
    """Child: signed deliveries of the seeded stream at ``rate`` for ``seconds``."""
    from simulator.send import send_payloads  # DATA PATH: the send child's own (see the top)
    from simulator.stream import generate_payloads

    secret = SECRET
    count = int(rate * seconds)
    # The simulator's stories reach up to three days past their start (bank debits settle then,
    # refund references follow a day later); events dated after their delivery are quarantined
    # (INVALID_EVENT_TIME). Live-like: start three days and an hour ago, so the latest events
    # are recent.
    start = datetime.now(UTC) - timedelta(days=3, hours=1)
    payloads = generate_payloads(count, SEED + 1, malformed_fraction=MALFORMED, start=start)
    bodies = [p.body for p in payloads]
    print("READY", flush=True)
    summary = asyncio.run(send_payloads(bodies, url, secret, rate=rate, concurrency=32))
    result = {
        "sent": summary.sent,
        "accepted": summary.accepted,
        "by_status": dict(summary.by_status),
        "elapsed_s": summary.elapsed_s,
        "p50_ms": summary.latency_ms(0.5),
        "p99_ms": summary.latency_ms(0.99),
    }
    print("RESULT " + json.dumps(result), flush=True)


def worker_poll(since: str, every: float, out: Path) -> None:
    """Child: poll silver through DuckDB; record when each event was first seen."""
    from warehouse.catalog import get_catalog  # DATA PATH: the poll child's own (see the top)
    from warehouse.duck import connect

    query = (
        "SELECT provider_event_id, epoch_us(received_at) FROM silver.payment_events "
        f"WHERE received_at >= TIMESTAMPTZ '{since}'"
    )
    seen: dict[str, tuple[float, float]] = {}  # id -> (received_at, first seen)
    stop, polls, cost = threading.Event(), 0, []
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    catalog = get_catalog()
    print("READY", flush=True)
    while True:
        began = time.time()
        con = connect(catalog)
        rows = con.sql(query).fetchall()
        con.close()
        now = time.time()
        polls += 1
        cost.append(now - began)
        for event_id, received_us in rows:
            if event_id not in seen:
                seen[event_id] = (received_us / 1e6, now)
        if stop.is_set():
            break
        stop.wait(max(0.0, every - (time.time() - began)))
    out.write_text(json.dumps({"seen": seen, "polls": polls, "poll_cost_s": cost}))


def commit_latencies(lh: Any, since: datetime) -> list[float]:
    """Per silver row received since ``since``: its snapshot's commit time − received_at."""
    import pyarrow.compute as pc  # DATA PATH: the draining process only (see the top)

    from warehouse import tables as T

    silver = lh.table(T.SILVER_PAYMENT_EVENTS)
    silver.refresh()
    delays: list[float] = []
    for snap in silver.snapshots():
        if snap.timestamp_ms < since.timestamp() * 1000 or snap.parent_snapshot_id is None:
            continue
        if snap.summary is None or snap.summary.operation.value != "append":
            continue
        rows = silver.incremental_append_scan(
            from_snapshot_id_exclusive=snap.parent_snapshot_id,
            to_snapshot_id_inclusive=snap.snapshot_id,
            selected_fields=("received_at",),
        ).to_arrow()
        if not rows.num_rows:
            continue
        received = pc.cast(rows["received_at"], "int64").to_numpy() / 1e6
        delays += [snap.timestamp_ms / 1000 - r for r in received if r >= since.timestamp()]
    return delays


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(lh: Any, args: argparse.Namespace, env: dict[str, str], folder: Path) -> dict:
    print(
        f"\n== latency: {args.rate:g} webhooks/s for {args.seconds:g} s through the receiver, "
        f"warm loop with batches of ≤ {args.loop_seconds:g} s ==",
        flush=True,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    receiver_log = (folder / "receiver.log").open("wb")
    receiver = child(
        ["-m", "lakehouse.cli", "receiver", "--port", str(port), "--log-level", "warning"],
        env,
        folder,
        stdout=receiver_log,
        stderr=subprocess.STDOUT,
    )
    procs: list[subprocess.Popen] = [receiver]
    try:
        deadline = time.monotonic() + 60
        while True:
            if receiver.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the receiver did not start; see {folder / 'receiver.log'}")
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        since = datetime.now(UTC)
        seen_file = folder / "seen.json"
        poller = child(
            [
                __file__,
                "--worker",
                "poll",
                "--since",
                since.isoformat(),
                "--poll",
                str(args.poll),
                "--out",
                str(seen_file),
            ],
            env,
            folder,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(poller)
        assert poller.stdout is not None
        if poller.stdout.readline().strip() != "READY":
            sys.exit("the silver poller did not start")
        sender = child(
            [
                __file__,
                "--worker",
                "send",
                "--url",
                f"{url}/webhooks/stripe",
                "--rate",
                str(args.rate),
                "--seconds",
                str(args.seconds),
            ],
            env,
            folder,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(sender)
        assert sender.stdout is not None
        if sender.stdout.readline().strip() != "READY":
            sys.exit("the sender did not start")
        print(f"receiver on {url}; poller every {args.poll:g} s; sending…", flush=True)
        batches: list[str] = []
        totals = RunTotals()
        PIDS.update(receiver=receiver.pid, poller=poller.pid)  # (the sender exits before the end)
        others = {name: proc_cpu_seconds(pid) for name, pid in PIDS.items()}
        cpu, started = cpu_seconds(), time.perf_counter()
        run_for = args.seconds + args.tail  # the warm loop as a deployment runs it
        while True:  # and on, a tail at a time, until the sender is done and a tail has passed
            part = run_loop(
                lh,
                max_records=args.max_records,
                max_seconds=args.loop_seconds,
                until_idle=False,
                run_for_seconds=run_for,
                gold_every_seconds=args.gold_every,
                log=batches.append,
            )
            totals.merge(part)
            if sender.poll() is not None:
                break
            if time.perf_counter() - started > 20 * (args.seconds + args.tail):
                print("the sender did not finish in time")
                break
            run_for = args.tail
        loop_wall, loop_cpu = time.perf_counter() - started, cpu_seconds() - cpu
        others = {name: proc_cpu_seconds(PIDS[name]) - was for name, was in others.items()}
        sent = last_json(sender.communicate(timeout=120)[0])
        poller.send_signal(signal.SIGTERM)
        poller.communicate(timeout=120)
        polled = json.loads(seen_file.read_text())
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        receiver_log.close()
    seen = polled["seen"]
    delays = [at - received for received, at in seen.values()]
    committed = commit_latencies(lh, since)
    result = {
        "sent": sent,
        "in_silver": len(seen),
        "silver_rows_in_loop": totals.rows_out["silver"],
        "quarantined": dict(totals.quarantined),
        "not_modelled": totals.not_modelled,
        "batches": totals.batches,
        "p50_s": quantile(delays, 0.5),
        "p95_s": quantile(delays, 0.95),
        "max_s": max(delays) if delays else float("nan"),
        "commit_p50_s": quantile(committed, 0.5),
        "commit_p95_s": quantile(committed, 0.95),
        "polls": polled["polls"],
        "poll_cost_p50_s": quantile(polled["poll_cost_s"], 0.5),
        "loop_cpu_share": loop_cpu / loop_wall,
        "cpu_share": {name: round(v / loop_wall, 2) for name, v in others.items()},
        "stage_seconds": {s: round(totals.seconds[s], 1) for s in STAGES},
    }
    print(
        f"sent {sent['sent']:,} ({sent['by_status']}) in {sent['elapsed_s']:.1f} s, "
        f"HTTP p50 {sent['p50_ms']:.1f} ms, p99 {sent['p99_ms']:.1f} ms"
    )
    print(
        f"silver: {len(seen):,} events seen through DuckDB ({result['polls']} polls, "
        f"{result['poll_cost_p50_s']:.2f} s each); the loop put "
        f"{result['silver_rows_in_loop']:,} "
        f"rows in silver in {totals.batches} batches, quarantined {result['quarantined']}, "
        f"not modelled {result['not_modelled']}"
    )
    print(
        f"loop stage seconds {result['stage_seconds']}; cores used: loop "
        f"{result['loop_cpu_share']:.2f}, "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_share"].items())
    )
    print(
        f"receipt → visible in silver through DuckDB: p50 {result['p50_s']:.1f} s, "
        f"p95 {result['p95_s']:.1f} s, max {result['max_s']:.1f} s"
    )
    print(
        f"receipt → silver snapshot committed:       p50 {result['commit_p50_s']:.1f} s, "
        f"p95 {result['commit_p95_s']:.1f} s"
    )
    return result


# --- 4. scan -------------------------------------------------------------------------------------
def scan(env: dict[str, str], folder: Path, rows: int) -> dict[str, Any]:
    print(f"\n== DuckDB aggregate over {rows:,} silver rows (bench/duckdb_scan.py) ==", flush=True)
    proc = child(
        [str(REPO / "bench" / "duckdb_scan.py"), "--rows", str(rows)],
        env,
        folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = proc.communicate()[0]
    print(out, end="")
    m = re.search(r"query:\s+cold ([\d.]+) s wall.*warm ([\d.]+) s wall", out)
    if proc.returncode != 0 or m is None:
        return {"cold_s": float("nan"), "warm_s": float("nan")}
    return {"cold_s": float(m.group(1)), "warm_s": float(m.group(2))}


# --- summary -------------------------------------------------------------------------------------
def summary(events: int, run: ShapeRun, loads: LoadSampler) -> None:
    loaded, d, lat, sc = run.loaded, run.drained, run.latency, run.scan

    def verdict(ok: bool | None) -> str:
        return "–" if ok is None else ("[green]met[/green]" if ok else "[red]NOT met[/red]")

    t = d.totals
    e2e = events / d.wall_s
    table = Table(
        title=f"Pipeline benchmark, {run.shape} shape, {events:,} events, {os.cpu_count()} cores"
    )
    for col in ("figure", "value", "goal", ""):
        table.add_column(col, justify="right" if col == "value" else "left")
    table.add_row(
        "load (direct writer)",
        f"{loaded['written'] / loaded['elapsed_s']:,.0f} ev/s",
        "",
        f"load avg {loads.summary('load')}",
    )
    for stage in STAGES:
        secs = t.seconds[stage]
        table.add_row(
            f"  {stage}",
            f"{t.rows_in[stage] / secs if secs else 0:,.0f} ev/s",
            "",
            f"{t.rows_in[stage]:,} rows in {secs:.1f} s",
        )
    table.add_row(
        "end to end (drain)", f"{e2e:,.0f} ev/s", f"≥ {GOAL_EPS:,}", verdict(e2e >= GOAL_EPS)
    )
    table.add_row(
        "  drain wall / CPU",
        f"{d.wall_s:.1f} s / {d.cpu_s:.1f} s",
        "",
        f"load avg {loads.summary('drain')}",
    )
    table.add_row("peak RSS (drain)", f"{d.peak_rss_mb:,.0f} MB", "", "")
    if lat:
        table.add_row("receipt→silver p50", f"{lat['p50_s']:.1f} s", "", "via DuckDB polls")
        table.add_row(
            "receipt→silver p95",
            f"{lat['p95_s']:.1f} s",
            f"< {GOAL_P95_S:g} s",
            verdict(lat["p95_s"] < GOAL_P95_S),
        )
        table.add_row(
            "  commit-based p50/p95",
            f"{lat['commit_p50_s']:.1f} / {lat['commit_p95_s']:.1f} s",
            "",
            f"load avg {loads.summary('latency')}",
        )
    else:
        table.add_row("receipt→silver p95", "skipped", f"< {GOAL_P95_S:g} s", verdict(None))
    if sc:
        table.add_row(
            "DuckDB agg 10M rows",
            f"{sc['warm_s']:.3f} s",
            f"< {GOAL_SCAN_S:g} s",
            verdict(sc["warm_s"] < GOAL_SCAN_S),
        )
        table.add_row(
            "  cold (first query)", f"{sc['cold_s']:.3f} s", "", f"load avg {loads.summary('scan')}"
        )
    else:
        table.add_row("DuckDB agg 10M rows", "skipped", f"< {GOAL_SCAN_S:g} s", verdict(None))
    Console(width=110).print(table)
    before = loads.samples.get("setup", [0.0])[0]  # before the benchmark started anything
    if before > 0.5:
        print(
            f"Other work was running when the benchmark started (load average {before:.1f} on "
            f"{os.cpu_count()} cores): wall-clock figures are below an idle machine's."
        )


# --- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="deliveries to drain")
    parser.add_argument("--max-records", type=int, default=200_000, help="records per batch")
    parser.add_argument("--rate", type=float, default=200.0, help="webhooks/s in the latency run")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the latency run")
    parser.add_argument("--tail", type=float, default=20.0, help="loop time after the sender")
    parser.add_argument("--loop-seconds", type=float, default=1.0, help="max_seconds per batch")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between silver polls")
    parser.add_argument(
        "--shapes",
        default="embedded",
        help="comma-separated shapes to measure in this run: embedded (SQLite catalog, local "
        "files), production (PostgreSQL catalog, S3 on s3proxy)",
    )
    parser.add_argument("--scan-rows", type=int, default=10_000_000)
    parser.add_argument("--skip-scan", action="store_true")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="no overlap between the loop's lanes (each stage's CPU is its own)",
    )
    parser.add_argument(
        "--gold-every",
        type=float,
        default=GOLD_EVERY_SECONDS,
        help="seconds between gold passes in the loop (the flow's default)",
    )
    parser.add_argument(
        "--no-models",
        dest="models",
        action="store_false",
        help="drain without registered models (gold writes null scores)",
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=100,  # fraud and churn labels look 30 days ahead: 60 days left no training rows
        help="training history length",
    )
    parser.add_argument("--customers", type=int, default=600, help="customers in that history")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the drain into FILE")
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="do not time the steps inside the stages",
    )
    parser.add_argument("--keep", type=Path, help="use this folder (kept) instead of a temp one")
    parser.add_argument(
        "--worker", choices=("load", "send", "poll", "train"), help=argparse.SUPPRESS
    )
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--since", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "load":
        return worker_load(args.events)
    if args.worker == "send":
        return worker_send(args.url, args.rate, args.seconds)
    if args.worker == "poll":
        return worker_poll(args.since, args.poll, args.out)
    if args.worker == "train":
        return worker_train(args.history_days, args.customers)

    shapes = [name.strip() for name in args.shapes.split(",") if name.strip()]
    if not shapes or set(shapes) - set(SHAPES):
        parser.error(f"--shapes takes a comma-separated list of {', '.join(SHAPES)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the broker on the way out
    print(f"load average at start: {os.getloadavg()} on {os.cpu_count()} cores", flush=True)
    loads = LoadSampler()
    runs: list[ShapeRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        folder = args.keep or Path(tmp)
        for shape in shapes:
            scan_here = shape == "embedded" and not args.skip_scan and not runs
            runs.append(run_shape(shape, args, folder / shape, loads, scan_here))
    loads.stop()
    loads.prefix = ""  # the phases below carry their shape's name already
    print(
        "\nload average (1 min, sampled every 2 s) by phase: "
        + ", ".join(f"{p} {loads.summary(p)}" for p in loads.samples)
    )
    for run in runs:
        loads.prefix = f"{run.shape} "
        summary(args.events, run, loads)
    if len(runs) > 1:
        compare(args.events, runs)


@dataclass
class ShapeRun:
    """The figures of one shape."""

    shape: str
    loaded: dict
    drained: Drain
    latency: dict | None
    scan: dict | None


def run_shape(
    shape: str, args: argparse.Namespace, folder: Path, loads: LoadSampler, scan_too: bool
) -> ShapeRun:
    """Train, load, drain, measure latency (and scan) on one shape, in its own private stack."""
    print(f"\n######## shape: {shape} ########", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    import flows.context  # DATA PATH (see the top)

    flows.context._LAKEHOUSE = None  # the warm context of the previous shape: its catalog, broker
    loads.prefix = f"{shape} "
    with private_stack(folder, shape) as env:
        if args.models:
            loads.start("train")
            train(args, env, folder)
        loads.start("load")
        loaded = load(args.events, env, folder)
        loads.start("drain")
        lh, drained = drain(args)
        print_drain(args.events, drained)
        lat = None
        if not args.skip_latency:
            loads.start("latency")
            lat = latency(lh, args, env, folder)
            if args.breakdown:
                BREAKDOWN.print("latency loop, where the time went")
                BREAKDOWN.reset()
        lh.close()
        sc = None
        if scan_too:
            loads.start("scan")
            sc = scan(env, folder, args.scan_rows)
    return ShapeRun(shape, loaded, drained, lat, sc)


def compare(events: int, runs: list[ShapeRun]) -> None:
    """The shapes side by side: end-to-end events/s and receipt → silver latency."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Embedded vs production shape, {events:,} events, same machine and run")
    for col in ("shape", "end to end", "receipt→silver p50", "p95", "commit-based p95"):
        table.add_column(col, justify="left" if col == "shape" else "right")
    for run in runs:
        lat = run.latency or {}
        table.add_row(
            run.shape,
            f"{events / run.drained.wall_s:,.0f} ev/s",
            f"{lat['p50_s']:.1f} s" if lat else "skipped",
            f"{lat['p95_s']:.1f} s" if lat else "skipped",
            f"{lat['commit_p95_s']:.1f} s" if lat else "skipped",
        )
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
