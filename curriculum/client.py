"""A run's store over the REST API, with the methods of :class:`~curriculum.run.Run` (no Ray import).

Every answer is what the Python handle answers, and every refusal the exception class it raises
(``NotFound``, ``InvalidQuery``, ``RunExists``, ``ValueError`` for settings ``create_run`` refuses),
plus ``Unauthorized`` / ``Forbidden`` for a token that is missing or falls short.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import httpx
import numpy as np

from curriculum.http_endpoint import api_error, server_error
from scorer_service.core.errors import InvalidQuery
from scorer_service.core.state import COLUMNS, Sample
from scorer_service.core.wire.answers import LabelIssue, RoundSummary, RunInfo, RunSummary, TopEntry

if TYPE_CHECKING:
    from scorer_service.config import StoreConfig

# The API's page and batch limits (scorer_service.web.routes): the largest asks it answers.
PAGE = 10_000
IDS_PER_ASK = 1000


class Client:
    """The REST API at ``api`` with bearer ``token``, bound to run ``run`` (or to none yet:
    :meth:`create_run` returns a client bound to the new run).

    Args:
        api: the API's base URL, e.g. ``http://127.0.0.1:8000`` (:func:`curriculum.serve`'s answer).
        token: an API token (``curriculum token create``), or None where the API needs none.
        run: the run the per-run methods act on.
        timeout: seconds per request.

    Raises:
        NotFound: an unknown run, round or sample; likewise ``InvalidQuery``, ``RunExists`` and
            ``ValueError`` (settings ``create_run`` refuses), each as the API answers.
        Unauthorized: a token that is missing or that the API does not know.
        Forbidden: a token whose role or runs do not cover the request.
        StoreUnavailable: a store that cannot answer now (a ``RuntimeError``).
        RuntimeError: another 5xx answer.

    Example::

        client = curriculum.Client("http://127.0.0.1:8000", token=token)
        run = client.create_run("http-demo", n=300, epochs=4, correct=False)
        print(run.label_issues()[:5])
        run.delete()
    """

    def __init__(
        self, api: str, token: str | None = None, *, run: str | None = None, timeout: float = 60.0
    ) -> None:
        self.api, self.token, self.name, self.timeout = api.rstrip("/"), token, run, timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.api, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    @property
    def config(self) -> StoreConfig:
        from scorer_service.config import StoreConfig

        return StoreConfig.from_dict(self.info().config)

    def info(self) -> RunInfo:
        """Counters and settings: samples ingested, rounds selected and completed, ..."""
        return RunInfo.from_json(self._ask("GET", ""))

    def rounds(self) -> list[RoundSummary]:
        """Each round: size, selector, selection time, ingested samples and recorded metrics."""
        return [RoundSummary(**r) for r in self._ask("GET", "/rounds")]

    def subset(self, round_: int) -> np.ndarray:
        """Every id trained on in ``round_``."""
        ids: list[int] = []
        while True:
            page = self._ask("GET", f"/rounds/{round_}/subset", params={"offset": len(ids), "limit": PAGE})
            ids.extend(page["ids"])
            if not page["ids"] or len(ids) >= page["total"]:
                return np.asarray(ids, dtype=np.int64)

    def scores(self, columns: tuple[str, ...] = tuple(COLUMNS)) -> dict[str, np.ndarray]:
        """Whole score columns by name (``dih``, ``last_loss``, ``seen``, ...), from one export."""
        import pyarrow.parquet as pq

        unknown = [c for c in columns if c not in COLUMNS]
        if unknown:
            raise InvalidQuery(f"unknown columns: {', '.join(unknown)}")
        r = self._send("GET", self._path("/export"), params={"format": "parquet"})
        table = pq.read_table(io.BytesIO(r.content), columns=list(columns))
        return {c: table.column(c).to_numpy(zero_copy_only=False).astype(COLUMNS[c][0]) for c in columns}

    def samples(self, ids: Any) -> list[Sample]:  # type: ignore[valid-type]
        """Every score of each sample in ``ids``."""
        flat = np.asarray(ids, dtype=np.int64).ravel().tolist()
        out: list[Sample] = []  # type: ignore[valid-type]
        for i in range(0, len(flat), IDS_PER_ASK):
            part = ",".join(map(str, flat[i : i + IDS_PER_ASK]))
            out.extend(Sample(**row) for row in self._ask("GET", "/samples", params={"ids": part}))
        return out

    def top(self, metric: str = "dih", k: int = 50, order: str = "desc") -> list[TopEntry]:
        """The ``k`` hardest (``desc``) or easiest (``asc``) samples by ``metric``."""
        rows = self._ask("GET", "/top", params={"metric": metric, "k": k, "order": order})
        return [TopEntry.from_json(r, metric) for r in rows]

    def label_issues(self, threshold: float = 0.5, limit: int = 100) -> list[LabelIssue]:
        """Samples whose label is likely wrong, most likely first (noise probability, label, prediction)."""
        issues = self._ask("GET", "/label-issues", params={"threshold": threshold, "limit": limit})
        return [LabelIssue(**r) for r in issues]

    def snapshot(self) -> int:
        """Write a snapshot of the store now; returns its number."""
        return cast(int, self._ask("POST", "/snapshot")["snapshot"])

    def delete(self) -> None:
        """Stop the run's store once the snapshot it is writing is complete; its snapshots stay on disk."""
        self._ask("DELETE", "")

    def runs(
        self, state: str | None = None, method: str | None = None, prefix: str | None = None
    ) -> list[RunSummary]:
        """The runs this token may read, with their state (``running`` / ``finished``) and counters,
        filtered by state, selector and name prefix."""
        params = {k: v for k, v in {"state": state, "method": method, "prefix": prefix}.items() if v}
        return [RunSummary(**r) for r in self._send("GET", "/v1/runs", params=params).json()]

    def create_run(
        self, name: str, n: int, *, num_classes: int | None = None, replace: bool = False, **settings: Any
    ) -> Client:
        """Create the store of a new run (the settings of ``curriculum.create_run``) and return a client
        bound to it; :class:`RunExists` while a run of that name is live, unless ``replace``."""
        spec = {"name": name, "n": n, "num_classes": num_classes, "replace": replace, "settings": settings}
        self._send("POST", "/v1/runs", json=spec)
        return Client(self.api, self.token, run=name, timeout=self.timeout)

    def _path(self, suffix: str) -> str:
        if self.name is None:
            raise ValueError("this client is bound to no run: Client(api, run=...) or create_run(...)")
        return f"/v1/runs/{quote(self.name, safe='')}{suffix}"

    def _ask(self, verb: str, suffix: str, **kwargs: Any) -> Any:
        return self._send(verb, self._path(suffix), **kwargs).json()

    def _send(self, verb: str, path: str, **kwargs: Any) -> httpx.Response:
        r = self.http.request(verb, path, **kwargs)
        if r.status_code >= 500:
            raise server_error(r)(f"{verb} {path}: {r.status_code} {r.text[:300]}")
        if r.status_code >= 400:
            raise api_error(r)
        return r
