"""Benchmark the webhook receiver against a no-op FastAPI endpoint, both loaded by ``wrk``.

    .venv/bin/python bench/receiver.py [--duration 15] [--connections 32] [--threads 2]

Starts a real broker (the embedded Kafka, free ports, a temporary folder) and, one after the other,
a no-op FastAPI POST endpoint (the ceiling) and ``lakehouse receiver``, each one uvicorn worker with
uvloop and httptools. Both get the same load: signed, ~1.5 KB Stripe-like deliveries (1,000 distinct
events, signed once at start) for the same duration and connections. Prints requests/s, p50 and
p99 for both and their ratio, then checks that every 2xx answer of the receiver is in the topics
(the end offsets grew by at least the number of 2xx). Goal: ratio >= 0.5 and p99 < 25 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import uvicorn
from confluent_kafka import Producer
from fastapi import FastAPI

from ingest.messages import build_message
from ingest.offsets import end_offsets
from ingest.producer import producer_config
from ingest.signature import sign
from ingest.topics import ALL_TOPICS, ensure_topics
from lakehouse.broker import LocalBroker
from lakehouse.supervisor import free_port

REPO = Path(__file__).resolve().parent.parent

SECRET = "whsec_bench_only"
EVENTS = 1000

#: wrk's request rotation and its one-line JSON summary (``Result``), shared with
#: ``bench/scoring.py``; each script adds an ``init`` that fills ``requests``.
WRK_COMMON = r"""
function request()
  i = i % #requests + 1
  return requests[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

LUA = (
    r"""
local requests = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    local sig, body = line:match("^([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", "/webhooks/stripe",
      {["Content-Type"] = "application/json", ["Stripe-Signature"] = sig}, body)
  end
  i = math.random(#requests)
end
"""
    + WRK_COMMON
)


@dataclass
class Result:
    """One wrk run."""

    requests: int
    duration_us: int
    non2xx: int
    socket_errors: int
    timeouts: int
    p50_us: int
    p99_us: int
    max_us: int
    server_cpu_s: float = 0.0  # CPU of the server process (all its threads) during the run
    broker_cpu_s: float = 0.0  # CPU of the broker's JVM during the run
    load: float = 0.0  # the machine's 1-minute load average right after the run

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process and all its threads so far (0 when not known)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ensure_wrk() -> str:
    """The wrk binary, installed with apt when missing and allowed."""
    if found := shutil.which("wrk"):
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
        if found := shutil.which("wrk"):
            return found
    sys.exit("wrk is not installed: sudo apt-get install -y wrk")


def stripe_like_event(i: int, created: int) -> bytes:
    """A payment_intent.succeeded delivery of about 1.5 KB."""
    amount = 1000 + i * 7
    event = {
        "id": f"evt_bench_{created}_{i:06d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "type": "payment_intent.succeeded",
        "livemode": False,
        "pending_webhooks": 1,
        "account": f"acct_bench_{i % 20:02d}",
        "request": {"id": f"req_{i:010d}", "idempotency_key": f"idem-{created}-{i}"},
        "data": {
            "object": {
                "id": f"pi_bench_{i:012d}",
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount,
                "currency": "usd",
                "status": "succeeded",
                "customer": f"cus_bench_{i % 500:05d}",
                "capture_method": "automatic",
                "confirmation_method": "automatic",
                "created": created,
                "description": "Benchmark order",
                "latest_charge": f"ch_bench_{i:012d}",
                "payment_method": f"pm_bench_{i:012d}",
                "payment_method_types": ["card"],
                "receipt_email": f"customer{i % 500}@example.com",
                "metadata": {"merchant_id": f"merchant_{i % 20:02d}", "order_id": f"ord_{i:08d}"},
                "payment_method_details": {
                    "type": "card",
                    "card": {
                        "brand": "visa",
                        "last4": "4242",
                        "exp_month": 12,
                        "exp_year": 2030,
                        "country": "US",
                        "funding": "credit",
                        "network": "visa",
                        "checks": {
                            "cvc_check": "pass",
                            "address_line1_check": "pass",
                            "address_postal_code_check": "pass",
                        },
                    },
                },
                "shipping": {
                    "name": "Jenny Rosen",
                    "address": {
                        "line1": "510 Townsend St",
                        "city": "San Francisco",
                        "state": "CA",
                        "postal_code": "94103",
                        "country": "US",
                    },
                },
            }
        },
    }
    body = orjson.dumps(event)
    event["data"]["object"]["statement_descriptor"] = "X" * max(0, 1536 - len(body) - 28)
    return orjson.dumps(event)


def write_load(folder: Path, bodies: list[bytes]) -> tuple[Path, Path]:
    """The wrk Lua script and its deliveries, signed now; return their paths."""
    now = int(time.time())
    lines = [f"{sign(body, SECRET, now)}\t{body.decode()}" for body in bodies]
    data = folder / "deliveries.tsv"
    data.write_text("\n".join(lines) + "\n")
    script = folder / "post.lua"
    script.write_text(LUA)
    return script, data


@contextmanager
def server(cmd: list[str], ready_url: str, env: dict[str, str], log: Path) -> Iterator[int]:
    """Run a server process until it answers ``ready_url`` with 200; stop it afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"server did not start: {' '.join(cmd)}; see {log}")
                try:
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            yield proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def run_wrk(
    wrk: str, url: str, script: Path, data: Path, args: argparse.Namespace, duration_s: float
) -> Result:
    cmd = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration_s:.0f}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(data),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    return Result(**orjson.loads(line.removeprefix("BENCH ")))


def measure(
    wrk: str,
    url: str,
    files: tuple[Path, Path],
    args: argparse.Namespace,
    pids: tuple[int, int | None],
) -> Result:
    """One measured run, with the CPU the server and the broker spent on it."""
    server_pid, broker_pid = pids
    cpu = cpu_seconds(server_pid), cpu_seconds(broker_pid)
    result = run_wrk(wrk, url, *files, args, args.duration)
    result.server_cpu_s = cpu_seconds(server_pid) - cpu[0]
    result.broker_cpu_s = cpu_seconds(broker_pid) - cpu[1]
    result.load = os.getloadavg()[0]
    return result


def warm_broker(bootstrap: str, seconds: float, bodies: list[bytes]) -> int:
    """Run the broker's produce path first (its JIT compiles it), as a long-running broker has:
    the receiver's own messages (same producer settings, keys and headers), in small requests,
    to the scratch topic ``bench.warmup``; return the messages written."""
    config = {"bootstrap.servers": bootstrap}
    ensure_topics(config, partitions=3, topics=("bench.warmup",))
    settings = {**producer_config(config, 5.0), "log_level": 0}
    del settings["logger"]
    producers = [Producer(settings) for _ in range(4)]
    sent, now = 0, datetime.now(UTC)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for i in range(8):  # requests of one or two messages, as the receiver's under load
            message = build_message(bodies[(sent + i) % len(bodies)], now, f"warmup-{sent + i}")
            producer = producers[i % len(producers)]
            producer.produce("bench.warmup", message.value, message.key, headers=message.headers)
        for producer in producers:
            producer.flush(10)
        sent += 8
    return sent


def written(bootstrap: str) -> int:
    return sum(end_offsets({"bootstrap.servers": bootstrap}, ALL_TOPICS).values())


def settle(bootstrap: str, quiet_s: float = 2.0) -> int:
    """Messages in the topics once the count stopped moving (late acks of cut-off requests)."""
    last, since = written(bootstrap), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = written(bootstrap)
        if now != last:
            last, since = now, time.monotonic()
    return last


@contextmanager
def local_broker(
    args: argparse.Namespace, folder: Path, bodies: list[bytes]
) -> Iterator[tuple[str, int | None]]:
    """The broker to write to: ``--bootstrap``, or a fresh local one, warmed up; yield its
    address and (when it runs here) its process id."""
    if args.bootstrap:
        yield args.bootstrap, args.broker_pid
        return
    broker = LocalBroker(
        data_dir=folder / "broker",
        cache_dir=REPO / ".lakehouse" / "cache",
        port=free_port(),
        controller_port=free_port(),
        heap="512m",
    )
    print("starting the broker…", flush=True)
    broker.start()
    try:
        sent = warm_broker(broker.bootstrap, args.broker_warmup, bodies)
        print(f"broker warmed up with {sent:,} messages in {args.broker_warmup:.0f} s", flush=True)
        yield broker.bootstrap, broker.pid()
    finally:
        broker.stop()


def bench(args: argparse.Namespace, folder: Path) -> tuple[Result, Result, int, int]:
    wrk = ensure_wrk()
    created = int(time.time())
    bodies = [stripe_like_event(i, created) for i in range(EVENTS)]
    size = sum(map(len, bodies)) // len(bodies)
    with local_broker(args, folder, bodies) as (bootstrap, broker_pid):
        script, data = write_load(folder, bodies)
        print(
            f"{EVENTS} signed deliveries of ~{size} bytes; wrk -t{args.threads} "
            f"-c{args.connections} -d{args.duration}s",
            flush=True,
        )
        env = {
            **os.environ,
            "LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "LAKEHOUSE_STRIPE_WEBHOOK_SECRETS": SECRET,
            "LAKEHOUSE_HOME": str(folder),
        }
        files = (script, data)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        noop_cmd = [sys.executable, __file__, "--serve-noop", str(port)]
        with server(noop_cmd, f"{url}/openapi.json", env, folder / "noop.log") as pid:
            print("no-op ceiling…", flush=True)
            run_wrk(wrk, url, *files, args, args.warmup)
            time.sleep(1)
            noop = measure(wrk, url, files, args, (pid, broker_pid))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        receiver_cmd = [
            sys.executable,
            "-m",
            "lakehouse.cli",
            "receiver",
            "--port",
            str(port),
            "--log-level",
            args.log_level,
        ]
        with server(receiver_cmd, f"{url}/health/ready", env, folder / "receiver.log") as pid:
            print("receiver…", flush=True)
            run_wrk(wrk, url, *files, args, args.receiver_warmup)
            before = settle(bootstrap)
            receiver = measure(wrk, url, files, args, (pid, broker_pid))
            after = settle(bootstrap)
        return noop, receiver, before, after


def report(noop: Result, receiver: Result, before: int, after: int) -> bool:
    print(
        f"\n{'':16}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
        f"{'server CPU':>12}{'broker CPU':>12}{'load':>6}"
    )
    for name, r in (("no-op ceiling", noop), ("receiver", receiver)):
        print(
            f"{name:16}{r.rps:12,.0f}{r.p50_us / 1000:9.2f}{r.p99_us / 1000:9.2f}"
            f"{r.max_us / 1000:9.1f}{r.non2xx + r.socket_errors + r.timeouts:8,}"
            f"{r.server_cpu_s / r.requests * 1e6:9.0f} µs"
            f"{r.broker_cpu_s / r.requests * 1e6:9.0f} µs{r.load:6.1f}"
        )
    print(f"{'':16}(CPU per request, all threads of the process; {os.cpu_count()} cores)")
    if max(noop.load, receiver.load) > (os.cpu_count() or 1):
        print(
            f"{'':16}the machine was busy (load above its cores): figures are below an idle one's"
        )
    ratio = receiver.rps / noop.rps
    stored = after - before
    goals = ratio >= 0.5 and receiver.p99_us < 25_000
    print(
        f"\nratio receiver / no-op: {ratio:.2f} (goal >= 0.50); receiver p99 "
        f"{receiver.p99_us / 1000:.1f} ms (goal < 25 ms): {'met' if goals else 'NOT met'}"
    )
    print(
        f"receiver 2xx answers: {receiver.ok:,}; messages written to the topics: {stored:,} "
        f"({stored - receiver.ok:,} more: requests cut off when wrk stopped)"
    )
    every = stored >= receiver.ok and receiver.ok > 0
    print("every 2xx is in the topics: " + ("yes" if every else "NO"))
    return goals and every


def serve_noop(port: int) -> None:
    """The ceiling: FastAPI, one POST route that does nothing, same server settings."""
    app = FastAPI()

    @app.post("/webhooks/stripe")
    async def noop() -> dict[str, bool]:
        return {"received": True}

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of no-op warm-up")
    parser.add_argument(
        "--receiver-warmup",
        type=float,
        default=15,
        help="seconds of receiver warm-up (it also "
        "warms the broker's JIT for the receiver's requests)",
    )
    parser.add_argument(
        "--broker-warmup", type=float, default=30, help="seconds of direct writes to the broker"
    )
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    parser.add_argument("--broker-pid", type=int, help="its process id, to measure its CPU")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-level", default="info", help="receiver log level")
    parser.add_argument("--serve-noop", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_noop:
        serve_noop(args.serve_noop)
        return
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as tmp:
        results = bench(args, Path(tmp))
    sys.exit(0 if report(*results) else 1)


if __name__ == "__main__":
    main()
