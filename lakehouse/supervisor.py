"""Process supervision for the local stack: one way to start, find, wait for and stop a
long-running process, used by every part (the broker, Prefect, the receiver, MLflow).

A :class:`Service` is a command, a pid file, a log file and a readiness check. ``start`` is
idempotent (a running service is only waited for), ``stop`` too (a stopped one is a no-op). A
service runs in its own session, so stopping it stops its whole process group; a pid file whose
process no longer runs the service's command (``marker``) is stale.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A part of the stack could not start; the message says what to do."""


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack."""

    name: str
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)  # on top of os.environ
    ready: Callable[[], bool] | None = None
    port: int | None = None  # checked free before starting
    marker: str = ""  # must appear in the process's command line (guards against reused pids)
    cwd: Path = REPO
    extra_ports: tuple[int, ...] = ()  # also checked free (a broker's controller port)
    port_hint: str = "choose another port (LAKEHOUSE_*_PORT)"  # what to do when one is taken


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (OSError, urllib.error.URLError):
        return False


def running_pid(service: Service) -> int | None:
    """The pid of the running service, or None (stale pid files are ignored)."""
    try:
        pid = int(service.pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if service.marker and cmdline.exists():
        if service.marker.encode() not in cmdline.read_bytes():
            return None
    return pid


def start(service: Service, timeout_s: float = 120.0) -> int:
    """Start ``service`` (or find it running), wait until it is ready; return its pid."""
    if (pid := running_pid(service)) is not None:
        wait_ready(service, timeout_s)
        return pid
    check_ports(service)
    service.pid_file.parent.mkdir(parents=True, exist_ok=True)
    service.log_file.parent.mkdir(parents=True, exist_ok=True)
    with service.log_file.open("ab") as log:
        proc = subprocess.Popen(
            service.argv,
            cwd=service.cwd,
            env={**os.environ, **service.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    service.pid_file.write_text(str(proc.pid))
    try:
        wait_ready(service, timeout_s, proc)
    except StackError:
        stop(service)
        raise
    return proc.pid


def check_ports(service: Service) -> None:
    """Raise ``StackError`` if a port the service listens on is taken."""
    for port in (service.port, *service.extra_ports):
        if port is not None and not port_is_free(port, HOST):
            raise StackError(
                f"{service.name}: port {port} on {HOST} is taken by another "
                f"program; stop it or {service.port_hint}"
            )


def wait_ready(service: Service, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll the readiness check until it passes; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while service.ready is not None and not service.ready():
        if proc is not None and proc.poll() is not None:
            raise StackError(
                f"{service.name} exited at start (code {proc.returncode}):\n"
                f"{log_tail(service.log_file)}\n(full log: {service.log_file})"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.name} not ready after {timeout_s:.0f} s; see {service.log_file}"
            )
        time.sleep(0.5)


def stop(service: Service, timeout_s: float = 20.0) -> bool:
    """Stop the service's process group (SIGTERM, then SIGKILL); return whether it ran."""
    pid = running_pid(service)
    service.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        _signal_group(pid, signal.SIGKILL)
        _alive(pid)  # reap it
    return True


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file ('' if there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own child so it does not linger as a zombie
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
