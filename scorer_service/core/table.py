"""A run's score table as a file: the export formats and their streamed encoding."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

EXPORT_FORMATS = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}
# Rows per Parquet row group / CSV batch: the most of the encoded file held in memory at once.
CHUNK_ROWS = 65_536


class _Pieces:
    """A write-only file that keeps what was written until :meth:`take` hands it on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class TableEncoder:
    """The score table (one row per sample id, ``id`` first) as a Parquet or CSV file, written part by
    part (a store shard's columns each) in pieces of ``rows`` samples (a Parquet row group, or a batch
    of CSV lines each), so neither the table nor the file is ever whole in memory."""

    def __init__(self, fmt: str, rows: int = CHUNK_ROWS) -> None:
        self.fmt, self.rows = fmt, rows
        self._sink = _Pieces()
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def part(self, first: int, columns: dict[str, np.ndarray]) -> Iterator[bytes]:
        """The pieces of the rows of samples ``first ..`` (the next ids after the previous part's)."""
        n = len(next(iter(columns.values())))
        for start in range(0, n, self.rows):
            stop = min(start + self.rows, n)
            ids = pa.array(np.arange(first + start, first + stop, dtype=np.int64))
            table = pa.table({"id": ids, **{name: values[start:stop] for name, values in columns.items()}})
            if self._writer is None:
                parquet = self.fmt == "parquet"
                sink = self._sink
                self._writer = (
                    pq.ParquetWriter(sink, table.schema) if parquet else pacsv.CSVWriter(sink, table.schema)
                )
            self._writer.write_table(table)
            yield self._sink.take()

    def close(self) -> bytes:
        """The file's last piece (its footer)."""
        assert self._writer is not None, "close() follows at least one part()"
        self._writer.close()
        return self._sink.take()
