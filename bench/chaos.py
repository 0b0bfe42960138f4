"""Chaos run: several loaders, real faults on a seeded schedule, then count what was lost.

    .venv/bin/python bench/chaos.py [--loaders 3] [--partitions 6] [--seconds 180] [--rate 100]
                                    [--fault-every 20] [--seed 7] [--keep]

Starts a private broker (``--partitions`` per topic), a temporary ``LAKEHOUSE_HOME``, the
receiver, and ``--loaders`` loaders in one consumer group (``lakehouse run microbatch``, each
with its own static member id, restarted when it exits as a Kubernetes Deployment would). For
``--seconds`` it sends signed webhooks at ``--rate`` per second (each with its own request id)
while faults hit on a schedule drawn from ``--seed``, each kind in turn:

- ``catalog``: another process holds the SQLite catalog's write lock for 10 to 40 s (its busy
  timeout is 30 s: commits wait, and past it fail);
- ``broker``: the broker is stopped and started again 3 to 10 s later;
- ``loader``: a loader is killed with SIGKILL (with its reader child), and restarted;
- ``reader``: a loader's reader child is killed with SIGKILL.

Then the loaders stop, one last loader drains what is left, and it prints the deliveries the
receiver acknowledged (2xx), those in bronze, lost (acknowledged, not in bronze), doubled (in
bronze more than once), and ``lakehouse audit``'s verdict. Exit status 1 when anything was lost
or doubled. Goal: 0 lost, 0 doubled, every run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from lakehouse.broker import LocalBroker
from lakehouse.supervisor import free_port
from tests.support.faults import hold_write_lock, reader_child_of

REPO = Path(__file__).resolve().parent.parent
FAULTS = ("catalog", "broker", "loader", "reader")
CONCURRENCY = 32  # requests in flight, as a provider's sender would allow
console = Console(width=None if sys.stdout.isatty() else 140)


@dataclass
class Stack:
    """The private broker, the folder and the environment every child process gets."""

    folder: Path
    broker: LocalBroker
    env: dict[str, str]
    log: Callable[[str], None] = print
    children: list[subprocess.Popen] = field(default_factory=list)

    def child(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """``python -m lakehouse.cli <args>`` in its own session, logging to ``<name>.log``."""
        out = (self.folder / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "lakehouse.cli", *args],
            env={**self.env, **(env or {})},
            cwd=self.folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append(proc)
        return proc

    def stop(self) -> None:
        """Every child still running (the receiver, a loader left by an error), then the broker."""
        for proc in self.children:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.children:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.broker.stop()


def start_stack(folder: Path, partitions: int) -> Stack:
    broker = LocalBroker(
        data_dir=folder / "broker",
        cache_dir=REPO / ".lakehouse" / "cache",
        port=free_port(),
        controller_port=free_port(),
        heap="768m",
        partitions=partitions,
    )
    broker.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "LAKEHOUSE_HOME": str(folder / "home"),
        "LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "LAKEHOUSE_STRIPE_WEBHOOK_SECRETS": f"whsec_chaos_{secrets.token_hex(16)}",
        "LAKEHOUSE_CONSUMER_SESSION_TIMEOUT_MS": "6000",
    }
    return Stack(folder, broker, env)


def start_receiver(stack: Stack) -> str:
    port = free_port()
    receiver = stack.child("receiver", "receiver", "--port", str(port), "--log-level", "warning")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if receiver.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the receiver did not start; see {stack.folder / 'receiver.log'}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return f"{url}/webhooks/stripe"
        except httpx.TransportError:
            pass
        time.sleep(0.2)


# --- the sender ----------------------------------------------------------------------------------
@dataclass
class Sent:
    """Outcomes by request id: which deliveries the receiver acknowledged."""

    acknowledged: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)


def send(url: str, secret: str, rate: float, seconds: float, seed: int, sent: Sent) -> None:
    """Signed deliveries of the seeded stream at ``rate`` for ``seconds`` (1 % malformed)."""
    from simulator.signing import signed_headers  # the simulator: only the sender needs it
    from simulator.stream import generate_payloads

    start = datetime.now(UTC) - timedelta(days=3, hours=1)  # see bench/pipeline.py: the gate
    bodies = [
        p.body
        for p in generate_payloads(int(rate * seconds), seed, start=start, malformed_fraction=0.01)
    ]

    async def deliver(client: httpx.AsyncClient, i: int, body: bytes) -> None:
        request_id = f"chaos-{i}"
        headers = {**signed_headers(body, secret), "X-Request-Id": request_id}
        try:
            status = str((await client.post(url, content=body, headers=headers)).status_code)
        except httpx.HTTPError as exc:
            status = f"error:{type(exc).__name__}"
        sent.outcomes[status] += 1
        if status.startswith("2"):
            sent.acknowledged.add(request_id)

    async def run() -> None:
        # at most CONCURRENCY requests in flight: when the receiver slows down (the broker is
        # down, the machine is busy) the schedule slips instead of requests timing out queued
        loop, slots = asyncio.get_running_loop(), asyncio.Semaphore(CONCURRENCY)
        limits = httpx.Limits(max_connections=CONCURRENCY)
        began, tasks = loop.time(), []
        async with httpx.AsyncClient(timeout=15, limits=limits) as client:
            for i, body in enumerate(bodies):
                delay = began + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                task = asyncio.create_task(deliver(client, i, body))
                task.add_done_callback(lambda _: slots.release())
                tasks.append(task)
            await asyncio.gather(*tasks)

    asyncio.run(run())


# --- loaders and faults ---------------------------------------------------------------------
class Loaders:
    """``n`` loaders in one group, each restarted when it exits (until ``stop``)."""

    def __init__(self, stack: Stack, n: int) -> None:
        self.stack = stack
        self.procs = [self._start(i) for i in range(n)]
        self.restarts = 0
        self.stopping = False

    def _start(self, i: int) -> subprocess.Popen:
        args = ("run", "microbatch", "--no-until-idle", "--run-for-seconds", "100000")
        return self.stack.child(
            f"loader-{i}",
            *args,
            "--max-records",
            "20000",
            "--max-seconds",
            "2",
            env={"LAKEHOUSE_CONSUMER_INSTANCE_ID": f"loader-{i}"},
        )

    def watch(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None and not self.stopping:
                self.procs[i] = self._start(i)
                self.restarts += 1

    def kill(self, i: int) -> None:
        os.killpg(self.procs[i].pid, signal.SIGKILL)

    def reader_of(self, i: int) -> int | None:
        return reader_child_of(self.procs[i].pid)

    def stop(self) -> None:
        self.stopping = True
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def lock_catalog(stack: Stack, seconds: float) -> None:
    hold_write_lock(stack.folder / "home" / "catalog.db", seconds).wait()


def restart_broker(stack: Stack, down_seconds: float) -> None:
    stack.broker.stop()
    time.sleep(down_seconds)
    stack.broker.start()


@dataclass
class Fault:
    at_s: float
    kind: str
    detail: str = ""


def schedule(seconds: float, every: float, rng: random.Random) -> list[Fault]:
    """Fault times from 30 s in (the loaders are warm) until 10 s before the end, each kind in
    turn (seeded order)."""
    kinds = list(FAULTS)
    rng.shuffle(kinds)
    faults, at = [], 30.0
    while at < seconds - 10:
        faults.append(Fault(round(at, 1), kinds[len(faults) % len(kinds)]))
        at += rng.uniform(0.5 * every, 1.5 * every)
    return faults


def inject(fault: Fault, stack: Stack, loaders: Loaders, rng: random.Random) -> None:
    """Start ``fault`` (in a thread when it lasts)."""
    i = rng.randrange(len(loaders.procs))
    if fault.kind == "catalog":
        hold = rng.uniform(10, 40)
        fault.detail = f"write lock held {hold:.0f} s"
        threading.Thread(target=lock_catalog, args=(stack, hold), daemon=True).start()
    elif fault.kind == "broker":
        down = rng.uniform(3, 10)
        fault.detail = f"down {down:.0f} s"
        threading.Thread(target=restart_broker, args=(stack, down), daemon=True).start()
    elif fault.kind == "loader":
        fault.detail = f"loader-{i} killed (SIGKILL)"
        loaders.kill(i)
    else:
        readers = {j: pid for j in range(len(loaders.procs)) if (pid := loaders.reader_of(j))}
        if not readers:
            fault.detail = "no loader has a reader yet: skipped"
            return
        j = rng.choice(sorted(readers))
        fault.detail = f"loader-{j}'s reader {readers[j]} killed (SIGKILL)"
        os.kill(readers[j], signal.SIGKILL)


# --- the run --------------------------------------------------------------------------------
def chaos(args: argparse.Namespace, stack: Stack) -> tuple[Sent, list[Fault], int]:
    url = start_receiver(stack)
    rng = random.Random(args.seed)
    faults = schedule(args.seconds, args.fault_every, rng)
    loaders = Loaders(stack, args.loaders)
    sent = Sent()
    secret = stack.env["LAKEHOUSE_STRIPE_WEBHOOK_SECRETS"]
    sender = threading.Thread(
        target=send, args=(url, secret, args.rate, args.seconds, args.seed, sent), daemon=True
    )
    began = time.monotonic()
    sender.start()
    pending = list(faults)
    with console.status("chaos…") as status:
        while sender.is_alive() or time.monotonic() - began < args.seconds:
            elapsed = time.monotonic() - began
            while pending and pending[0].at_s <= elapsed:
                fault = pending.pop(0)
                inject(fault, stack, loaders, rng)
                console.print(f"{elapsed:6.1f} s  {fault.kind:8} {fault.detail}")
            loaders.watch()
            status.update(
                f"chaos… {elapsed:.0f}/{args.seconds:g} s, {sum(sent.outcomes.values())} sent"
            )
            time.sleep(0.5)
        sender.join()
        status.update("stopping the loaders…")
        loaders.stop()
    return sent, faults, loaders.restarts


def drain(stack: Stack) -> None:
    """One loader drains what is left (after the static members' sessions expired)."""
    time.sleep(10)
    with console.status("draining…"):
        final = stack.child("drain", "run", "microbatch", "--until-idle", "--max-records", "50000")
        if final.wait() != 0:
            final = stack.child("drain", "run", "microbatch", "--until-idle")  # once more
            final.wait()


def verdict(stack: Stack, sent: Sent) -> tuple[dict[str, int], object]:
    os.environ.update({k: v for k, v in stack.env.items() if k.startswith("LAKEHOUSE_")})
    from flows.audit import run_audit  # after the environment names this run's lakehouse
    from warehouse import sql

    rows = sql(
        "SELECT request_id, count(*) AS n FROM bronze.webhook_events "
        "WHERE request_id LIKE 'chaos-%' GROUP BY 1"
    ).to_pylist()
    landed = {r["request_id"]: r["n"] for r in rows}
    figures = {
        "sent": sum(sent.outcomes.values()),
        "acknowledged (2xx)": len(sent.acknowledged),
        "in bronze": sum(landed.values()),
        "lost (acknowledged, not in bronze)": len(sent.acknowledged - set(landed)),
        "doubled (in bronze more than once)": sum(n - 1 for n in landed.values()),
        "in bronze without a 2xx (answered 503 after the broker took it)": len(
            set(landed) - sent.acknowledged
        ),
    }
    return figures, run_audit()


def report(figures: dict[str, int], audit, faults: list[Fault], restarts: int, sent: Sent) -> None:
    table = Table("", "deliveries", title="chaos run", title_justify="left")
    for name, value in figures.items():
        bad = name.startswith(("lost", "doubled")) and value
        table.add_row(name, f"[red]{value:,}[/red]" if bad else f"{value:,}")
    console.print(table)
    console.print(f"answers: {dict(sorted(sent.outcomes.items()))}")
    kinds = Counter(f.kind for f in faults)
    console.print(f"faults: {dict(kinds)}; loader restarts: {restarts}")
    from lakehouse.commands.audit import print_report

    print_report(audit, out=console)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loaders", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6, help="partitions per topic")
    parser.add_argument("--seconds", type=float, default=180.0, help="how long faults hit")
    parser.add_argument("--rate", type=float, default=100.0, help="webhooks per second")
    parser.add_argument("--fault-every", type=float, default=20.0, help="mean seconds between")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs, tables)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lakehouse-chaos-"))
    console.print(f"folder: {folder} (loader logs: loader-*.log)")
    stack = start_stack(folder, args.partitions)
    try:
        sent, faults, restarts = chaos(args, stack)
        drain(stack)
        figures, audit = verdict(stack, sent)
    finally:
        stack.stop()
    report(figures, audit, faults, restarts, sent)
    failed = (
        figures["lost (acknowledged, not in bronze)"]
        or figures["doubled (in bronze more than once)"]
        or not audit.ok
    )
    if not args.keep and not failed:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
