"""The bronze loader's broker reader in a child process, behind ``BatchReader``'s interface.

confluent-kafka builds a Python object for every message and every header while it holds the GIL
(measured in the micro-batch drain: 12 µs a delivery, over half of the GIL time of the whole
loop), which stalls the loop's other lanes for as long. In a child process that work has a GIL and
a core of its own: the child runs a ``BatchReader`` and hands each batch back as an Arrow IPC
stream over a pipe, which the parent reads into an Arrow buffer with the GIL released.

While the parent appends a batch to bronze, the child already reads the next one (a read ahead
that found nothing is dropped if messages arrived since); its lag counts what was not yet
handed over, read ahead or not. The no-loss protocol does not change: the parent appends the
batch to bronze and only then asks the child to commit the offsets, and a batch read ahead but
never handed over is simply read again by the next loader. On a partition assignment the child
asks the parent for the offsets bronze recorded (the parent knows the catalog, ``ingest`` does
not). The child exits when the parent closes it or dies (its pipe ends), so a ``kill -9`` of the
loader leaves no orphan.

Frames, both ways: a 4-byte length, a JSON header, and for a batch the IPC stream of its length.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

import pyarrow as pa

from ingest.consumer import Batch, BatchReader, PartitionKey

_LENGTH = struct.Struct(">I")
_PIPE_BYTES = 1 << 20  # F_SETPIPE_SZ: fewer, larger writes of a batch
_F_SETPIPE_SZ = 1031


class ReaderProcessError(RuntimeError):
    """The child reader failed (a broker error, or it exited); the message says which."""


def _write_frame(out: IO[bytes], header: dict[str, Any], body: pa.Buffer | None = None) -> None:
    if body is not None:
        header = {**header, "body": body.size}
    raw = json.dumps(header).encode()
    out.write(_LENGTH.pack(len(raw)) + raw)
    if body is not None:
        view = memoryview(body)
        while view:
            view = view[out.write(view) :]


def _read_exact(source: IO[bytes], size: int, into: memoryview | None = None) -> memoryview:
    view = into if into is not None else memoryview(bytearray(size))
    got = 0
    while got < size:
        n = source.readinto(view[got:])
        if not n:
            raise EOFError("the other end of the reader pipe closed")
        got += n
    return view


def _read_frame(source: IO[bytes]) -> tuple[dict[str, Any], pa.Buffer | None]:
    (length,) = _LENGTH.unpack(_read_exact(source, _LENGTH.size))
    header = json.loads(bytes(_read_exact(source, length)))
    if "body" not in header:
        return header, None
    body = pa.allocate_buffer(header["body"])
    _read_exact(source, header["body"], memoryview(body).cast("B"))
    return header, body


def _ipc(rows: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return sink.getvalue()


def _widen(pipe: IO[bytes]) -> None:
    try:
        fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError:  # not Linux, or over the system's limit: default size
        pass


class ReaderProcess:
    """``BatchReader`` run in a child process; the same methods, the same guarantees."""

    def __init__(
        self,
        client_config: Mapping[str, str],
        group_id: str,
        recorded_offsets: Callable[[], Mapping[PartitionKey, int]],
        session_timeout_ms: int = 10_000,
        instance_id: str | None = None,
    ) -> None:
        self._recorded_offsets = recorded_offsets
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.reader_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to, self._from = self._proc.stdin, self._proc.stdout
        _widen(self._from)
        # the config goes through the pipe, not argv: it may hold credentials
        start = {
            "op": "start",
            "client_config": dict(client_config),
            "group_id": group_id,
            "session_timeout_ms": session_timeout_ms,
            "instance_id": instance_id,
        }
        self._call(start)

    @property
    def pid(self) -> int:
        """The child's process id (for operators and tests)."""
        return self._proc.pid

    def _call(self, request: dict[str, Any]) -> tuple[dict[str, Any], pa.Buffer | None]:
        failure: Exception | None = None
        try:
            _write_frame(self._to, request)
            while True:
                header, body = _read_frame(self._from)
                if header["op"] == "recorded_offsets":  # asked during a partition assignment
                    failure = self._answer_recorded_offsets() or failure
                    continue
                # the request's own answer has come: the pipe is in step for the next one
                if failure is not None:
                    raise failure
                if header["op"] == "error":
                    raise ReaderProcessError(f"broker reader: {header['message']}")
                return header, body
        except (EOFError, BrokenPipeError) as exc:
            code = self._proc.wait(timeout=10)
            raise ReaderProcessError(f"the broker reader process exited ({code})") from exc

    def _answer_recorded_offsets(self) -> Exception | None:
        """Tell the child where bronze stopped; if that cannot be known, say so (the child's
        poll then fails instead of waiting for an answer) and return the failure to raise."""
        try:
            offsets = dict(self._recorded_offsets())
        except Exception as exc:  # noqa: BLE001 - raised once the child has answered
            _write_frame(self._to, {"op": "recorded_offsets", "error": repr(exc)})
            return exc
        _write_frame(self._to, {"op": "recorded_offsets", "offsets": offsets})
        return None

    def poll_batch(self, max_records: int, max_seconds: float) -> Batch:
        """As ``BatchReader.poll_batch``."""
        header, body = self._call(
            {"op": "poll", "max_records": max_records, "max_seconds": max_seconds}
        )
        assert body is not None
        rows = pa.ipc.open_stream(body).read_all()
        return Batch(rows, {k: int(v) for k, v in header["next_offsets"].items()})

    def commit(self, next_offsets: Mapping[PartitionKey, int]) -> None:
        """As ``BatchReader.commit``: after bronze committed them."""
        self._call({"op": "commit", "offsets": dict(next_offsets)})

    def lag(self) -> dict[str, int]:
        """As ``BatchReader.lag``."""
        return self._call({"op": "lag"})[0]["lag"]

    def close(self) -> None:
        """Leave the group and end the child."""
        if self._proc.poll() is None:
            try:
                self._call({"op": "close"})
            except ReaderProcessError:
                pass
            self._to.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._from.close()


class _Child:
    """The child's side: one ``BatchReader`` that reads the next batch ahead while the parent
    appends the last one. A thread reads every frame from the parent; the main thread answers
    requests in order; batches are read in a worker thread, beside which commits and lag
    queries run (librdkafka is thread-safe for that)."""

    def __init__(self, source: IO[bytes], out: IO[bytes]) -> None:
        self._source, self._out = source, out
        self._writing = threading.Lock()
        self._requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._consuming = ThreadPoolExecutor(1, thread_name_prefix="consume")
        self._ahead: Future | None = None
        self._handed_over: dict[PartitionKey, int] = {}
        self._reader: BatchReader | None = None

    def send(self, header: dict[str, Any], body: pa.Buffer | None = None) -> None:
        with self._writing:
            _write_frame(self._out, header, body)

    def _read_frames(self) -> None:
        try:
            while True:
                frame, _ = _read_frame(self._source)
                box = self._answers if frame["op"] == "recorded_offsets" else self._requests
                box.put(frame)
        except (EOFError, OSError):  # the parent closed the pipe or died
            self._requests.put(None)
            self._answers.put(None)

    def _recorded_offsets(self) -> dict[str, int]:
        """Asked during a partition assignment (in the consumer's thread)."""
        self.send({"op": "recorded_offsets"})
        answer = self._answers.get()
        if answer is None:
            raise EOFError("the parent is gone")
        if "error" in answer:
            raise RuntimeError(f"bronze's recorded offsets are unknown: {answer['error']}")
        return answer["offsets"]

    def serve(self) -> None:
        threading.Thread(target=self._read_frames, name="frames", daemon=True).start()
        try:
            while (request := self._requests.get()) is not None:
                try:
                    if not self._answer(request):
                        return
                except Exception as exc:  # noqa: BLE001 - answered; the parent raises it
                    self.send({"op": "error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            self._shut()

    def _answer(self, request: dict[str, Any]) -> bool:
        """Answer one request; False once closed."""
        op = request["op"]
        if op == "start":
            self._reader = self._consume(
                BatchReader,
                request["client_config"],
                request["group_id"],
                self._recorded_offsets,
                session_timeout_ms=request["session_timeout_ms"],
                instance_id=request["instance_id"],
            )
            self.send({"op": "ok"})
        elif op == "poll":
            self._poll(request["max_records"], request["max_seconds"])
        elif op == "commit":  # beside a read ahead: the client is thread-safe (commit ∥ consume)
            self.reader.commit(request["offsets"])
            self.send({"op": "ok"})
        elif op == "lag":
            self.send({"op": "lag", "lag": self.reader.lag(self._handed_over)})
        elif op == "close":
            self._shut()
            self.send({"op": "ok"})
            return False
        else:
            raise ValueError(f"unknown request {op!r}")
        return True

    @property
    def reader(self) -> BatchReader:
        if self._reader is None:
            raise RuntimeError("the reader was not started")
        return self._reader

    def _consume(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a call in the reading thread, after the read ahead (if any)."""
        return self._consuming.submit(fn, *args, **kwargs).result()

    def _poll(self, max_records: int, max_seconds: float) -> None:
        batch = self._ahead.result() if self._ahead is not None else None
        self._ahead = None
        if batch is None or (batch.size == 0 and any(self.reader.lag(self._handed_over).values())):
            # nothing read ahead, or it found nothing but messages have arrived since: read now
            batch = self._consume(self.reader.poll_batch, max_records, max_seconds)
        self._handed_over.update(batch.next_offsets)
        self.send({"op": "batch", "next_offsets": batch.next_offsets}, _ipc(batch.rows))
        # read the next batch while the parent appends this one
        self._ahead = self._consuming.submit(self.reader.poll_batch, max_records, max_seconds)

    def _shut(self) -> None:
        if self._reader is not None:
            self._reader.stop()  # a read ahead returns what it has
            if self._ahead is not None:
                self._ahead.exception()
            self._consuming.submit(self._reader.close).result()
            self._reader = None
        self._consuming.shutdown()


def main() -> None:
    """Entry point of the child (``python -m ingest.reader_process``)."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a stray print must not corrupt the frames: stdout now goes to stderr
    source = os.fdopen(0, "rb", buffering=0)
    _widen(out)
    try:
        _Child(source, out).serve()
    except (EOFError, BrokenPipeError):
        pass  # the parent closed the pipe or died: nothing is left to answer


if __name__ == "__main__":
    main()
