"""Benchmark the scoring API per endpoint against a no-op FastAPI endpoint, in the same run.

    .venv/bin/python bench/scoring.py [--rate 200] [--duration 10] [--connections 32]

Sets up a lakehouse home in a temporary folder: the small labelled history of the tests in
silver and the three models trained on it registered as champions in MLflow. Starts ``lakehouse
scoring`` on it and a no-op FastAPI app (every scoring path answers a constant), each one uvicorn
worker with uvloop and httptools. Request bodies are the history's own payments (``request_body``,
500 distinct per endpoint), asked about an hour after the newest event.

For each endpoint, and for the no-op: a **fixed offered load** (``--rate`` requests/s, open loop:
a request's latency counts from when it was due, so a stall is not hidden by fewer requests) from
an asyncio client on keep-alive connections, then **saturation** with ``wrk`` (closed loop,
``--connections``). Prints requests/s, p50 and p99 of both, and the capacity ratio to the no-op.
Goals: p99 under 20 ms at 200 requests/s; capacity at least half the no-op's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import uvicorn
import uvloop
from fastapi import FastAPI, Request
from receiver import WRK_COMMON, Result, ensure_wrk, server

from lakehouse.supervisor import free_port
from ml import registry
from ml.features import select_inputs
from serving.events import CHURN_PATH, FRAUD_PATH, RECOVERY_PATH, RETRY_PATH, request_body
from settings import Settings
from tests.support.history import small_silver, trained_small
from warehouse import io
from warehouse import tables as T
from warehouse.catalog import ensure_table, get_catalog

PATHS = (FRAUD_PATH, RETRY_PATH, CHURN_PATH, RECOVERY_PATH)
BODIES = 500

LUA = (
    r"""
local requests = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("POST", args[2],
      {["Content-Type"] = "application/json"}, line)
  end
  i = math.random(#requests)
end
"""
    + WRK_COMMON
)


def prepare_home(home: Path) -> pl.DataFrame:
    """Silver and registered champions in ``home``; the silver rows."""
    settings = Settings(home=home)
    silver = small_silver()
    table = ensure_table(get_catalog(settings), T.SILVER_PAYMENT_EVENTS)
    io.append(table, silver.to_arrow(), summary={})
    for model in trained_small().values():
        registry.register_model(model, settings)
    return silver


def bodies(silver: pl.DataFrame, path: str) -> list[bytes]:
    """``BODIES`` payments of the history (declined ones for retry and recovery), an hour after
    the newest event."""
    at = (silver["provider_created_at"].max() + timedelta(hours=1)).isoformat()
    declined = path in (RETRY_PATH, RECOVERY_PATH)
    kind = "payment.failed" if declined else "payment.succeeded"
    rows = silver.filter((pl.col("event_type") == kind) & pl.col("customer_id").is_not_null())
    rows = select_inputs(rows).with_columns(amount_minor=rows["amount_minor"]).tail(BODIES)
    out = []
    for row in rows.iter_rows(named=True):
        body = request_body(row, path)
        (body["payment"] if path == CHURN_PATH else body)["created_at"] = at
        out.append(orjson.dumps(body))
    return out


# --- fixed offered load: an open-loop asyncio client ------------------------------------------
async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return int(head[9:12])


async def _fixed_rate(
    port: int, path: str, payloads: list[bytes], rate: float, seconds: float, connections: int
) -> tuple[list[float], int, float]:
    """Latencies (s, from when each request was due), non-2xx count and the achieved rate."""
    raw = [
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(p)}\r\n\r\n".encode()
        + p
        for p in payloads
    ]
    queue: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            due, request = item
            status = await _one(reader, writer, request)
            latencies.append(time.perf_counter() - due)
            errors += not 200 <= status < 300
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start, total = time.perf_counter(), int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        queue.put_nowait((due, raw[i % len(raw)]))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, errors, total / (time.perf_counter() - start)


def fixed_rate(port: int, path: str, payloads: list[bytes], args: argparse.Namespace) -> dict:
    latencies, errors, achieved = uvloop.run(
        _fixed_rate(port, path, payloads, args.rate, args.duration, 16)
    )
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return {"rps": achieved, "p50_ms": p50, "p99_ms": p99, "errors": errors}


# --- saturation: wrk ---------------------------------------------------------------------------
def saturation(wrk: str, port: int, path: str, data: Path, args: argparse.Namespace) -> Result:
    script = data.parent / "post.lua"
    script.write_text(LUA)
    cmd = [
        wrk, "-t2", f"-c{args.connections}", f"-d{args.duration:.0f}s", "--timeout", "10s",
        "-s", str(script), f"http://127.0.0.1:{port}", "--", str(data), path,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    return Result(**orjson.loads(line.removeprefix("BENCH ")))


def measure(wrk: str, port: int, path: str, payloads: list[bytes], args, folder: Path) -> dict:
    data = folder / f"bodies{path.replace('/', '_')}.txt"
    data.write_bytes(b"\n".join(payloads) + b"\n")
    saturation(wrk, port, path, data, argparse.Namespace(**{**vars(args), "duration": 2}))
    fixed = fixed_rate(port, path, payloads, args)
    loaded = saturation(wrk, port, path, data, args)
    return {"fixed": fixed, "saturation": loaded}


def report(results: dict[str, dict], rate: float) -> bool:
    noop = results["no-op"]["saturation"].rps
    print(
        f"\n{'':22}{'at ' + format(rate, '.0f') + ' requests/s':>30}{'saturation':>36}\n"
        f"{'endpoint':22}{'achieved':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}"
        f"{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}{'vs no-op':>10}"
    )
    met = True
    for name, r in results.items():
        fixed, sat = r["fixed"], r["saturation"]
        ratio = sat.rps / noop
        errors = sat.non2xx + sat.socket_errors + sat.timeouts
        print(
            f"{name:22}{fixed['rps']:10.0f}{fixed['p50_ms']:9.2f}{fixed['p99_ms']:9.2f}"
            f"{fixed['errors']:7}{sat.rps:12,.0f}{sat.p50_us / 1000:9.2f}{sat.p99_us / 1000:9.2f}"
            f"{errors:7}{ratio:10.2f}"
        )
        if name != "no-op":
            met &= fixed["p99_ms"] < 20 and ratio >= 0.5 and fixed["errors"] == errors == 0
    load = os.getloadavg()[0]
    print(f"\nmachine: {os.cpu_count()} cores, load {load:.1f} after the run")
    verdict = "met" if met else "NOT met"
    print(f"goals (p99 < 20 ms at {rate:.0f}/s, capacity >= 0.5 × no-op): {verdict}")
    return met


def serve_noop(port: int) -> None:
    """The ceiling: FastAPI, the scoring paths answering a constant, same server settings."""
    app = FastAPI()

    async def noop(request: Request) -> dict[str, float]:
        return {"score": 0.5}

    for path in PATHS:
        app.add_api_route(path, noop, methods=["POST"])
    app.add_api_route("/health/live", noop, methods=["GET"])
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
        access_log=False, log_level="warning", server_header=False,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200, help="fixed offered load, requests/s")
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--serve-noop", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_noop:
        serve_noop(args.serve_noop)
        return
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        folder = Path(tmp)
        print("preparing silver and champions (the tests' small history)…", flush=True)
        silver = prepare_home(folder / "home")
        payloads = {path: bodies(silver, path) for path in PATHS}
        env = {**os.environ, "LAKEHOUSE_HOME": str(folder / "home")}
        results: dict[str, dict] = {}
        port = free_port()
        cmd = [sys.executable, __file__, "--serve-noop", str(port)]
        with server(cmd, f"http://127.0.0.1:{port}/openapi.json", env, folder / "noop.log"):
            print("no-op…", flush=True)
            results["no-op"] = measure(wrk, port, FRAUD_PATH, payloads[FRAUD_PATH], args, folder)
        port = free_port()
        cmd = [sys.executable, "-m", "lakehouse.cli", "scoring", "--port", str(port)]
        ready = f"http://127.0.0.1:{port}/health/ready"
        with server(cmd, ready, env, folder / "scoring.log"):
            for path in PATHS:
                print(f"{path}…", flush=True)
                results[path] = measure(wrk, port, path, payloads[path], args, folder)
    sys.exit(0 if report(results, args.rate) else 1)


if __name__ == "__main__":
    main()
