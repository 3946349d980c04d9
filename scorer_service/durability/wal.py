"""The write-ahead log: its record format, an appender that syncs in the background, a streaming reader.

Each record is ``[magic, header length, payload length][JSON header][Arrow IPC payload]``. A reader
stops at the first record that is cut short or does not start with the magic: a crash in the middle
of a write leaves such a tail, and its call was never acknowledged, so the sender retries it.
Nothing is unpickled: headers are JSON, payloads Arrow.
"""

from __future__ import annotations

import io
import json
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyarrow import fs as pafs

from scorer_service.durability.codec import to_numpy, to_record_batch

_MAGIC = b"CWAL"
_FRAME = struct.Struct("<4sIQ")
# A header is a few hundred bytes; anything this large is a corrupt length field, not a record.
_MAX_HEADER = 1 << 20


def encode(header: dict[str, Any], columns: dict[str, np.ndarray] | None = None) -> bytes:
    """One record: ``header`` as JSON and ``columns`` (optional) as an Arrow IPC stream."""
    head = json.dumps(header).encode()
    payload = b""
    if columns:
        sink = io.BytesIO()
        rb = to_record_batch(columns)
        with pa.ipc.new_stream(sink, rb.schema) as w:
            w.write_batch(rb)
        payload = sink.getvalue()
    return _FRAME.pack(_MAGIC, len(head), len(payload)) + head + payload


@dataclass
class Record:
    """A record read back: where it ends in its file, its header, its columns, and its raw bytes."""

    end: int
    header: dict[str, Any]
    columns: dict[str, np.ndarray] | None
    raw: bytes


def read_records(stream: Any) -> Iterator[Record]:
    """The complete records of an open input stream, one at a time (memory: one record).

    Stops at the first incomplete or malformed record; a caller tells a clean end from a torn one
    by comparing the last record's ``end`` with the file's size.
    """
    pos = 0
    while True:
        frame = stream.read(_FRAME.size)
        if len(frame) < _FRAME.size:
            return
        magic, hlen, plen = _FRAME.unpack(frame)
        if magic != _MAGIC or hlen > _MAX_HEADER:
            return
        body = stream.read(hlen + plen)
        if len(body) < hlen + plen:
            return
        try:
            header = json.loads(body[:hlen])
            columns = to_numpy(pa.ipc.open_stream(body[hlen:]).read_all()) if plen else None
        except (ValueError, pa.ArrowInvalid):
            return
        pos += _FRAME.size + hlen + plen
        yield Record(pos, header, columns, frame + body)


class LogWriter:
    """Appends records to one log file; a background thread makes them durable on request.

    ``append`` hands the bytes to the operating system (they survive the process, not the
    machine). ``append(..., sync=True)`` also asks the syncer thread to fsync, which it does while
    the caller goes on (applying the change it just logged); :meth:`wait` then blocks until every
    byte up to a position is on disk. This is group commit: one fsync covers everything appended
    before it starts, so the records of callers that append while the disk is busy share the next
    one, and each of them returns from :meth:`wait` once the fsync covering its record is done
    (``syncs`` counts the fsyncs). Only local files (and NFS mounts) can be synced; on other
    filesystems ``wait`` returns once the bytes are written.
    """

    def __init__(self, fs: pafs.FileSystem, path: str) -> None:
        self.path = path
        self._local = isinstance(fs, pafs.LocalFileSystem)
        # Held open for the log's life (closed by close()); unbuffered, so every append is one write.
        self._file: Any = open(path, "wb", buffering=0) if self._local else fs.open_output_stream(path)  # noqa: SIM115
        self._written = self._synced = self._requested = 0
        self.syncs = 0
        self._closed = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        if self._local:
            sync_dir(os.path.dirname(path))  # the new file's name must survive a crash too
            self._thread = threading.Thread(target=self._sync_loop, name="wal-sync", daemon=True)
            self._thread.start()

    def append(self, record: bytes, sync: bool = False) -> int:
        """Write ``record``; returns the position after it (for :meth:`wait`)."""
        self._file.write(record)
        if not self._local:
            self._file.flush()
        with self._cond:
            self._written += len(record)
            if sync:
                self._requested = self._written
                self._cond.notify_all()
            return self._written

    def wait(self, position: int | None = None) -> None:
        """Block until the file is on disk up to ``position`` (default: everything appended)."""
        if not self._local:
            return
        with self._cond:
            target = self._written if position is None else position
            if self._closed:  # closed after a final sync (or under a policy that never syncs)
                return
            self._requested = max(self._requested, target)
            self._cond.notify_all()
            while self._synced < target and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise OSError(f"could not sync the write-ahead log {self.path}: {self._error}")

    def close(self, sync: bool) -> None:
        """Close the file, first syncing what was appended when ``sync``."""
        if sync:
            self.wait()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        self._file.close()

    def _sync_loop(self) -> None:
        fd = self._file.fileno()
        while True:
            with self._cond:
                while self._synced >= self._requested and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                target = self._written
            try:
                os.fdatasync(fd)
            except OSError as e:  # reported to every waiter: an acknowledgement must not outrun the disk
                with self._cond:
                    self._error = e
                    self._cond.notify_all()
                return
            with self._cond:
                self._synced = max(self._synced, target)
                self.syncs += 1
                self._cond.notify_all()


def sync_dir(path: str) -> None:
    """fsync a local directory, so that files created or renamed in it survive a machine crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
