"""``GET /v1/runs/{run}/label-issues``: the training samples whose label is likely wrong."""

from __future__ import annotations

from fastapi import FastAPI, Path, Query

from scorer_service.core.wire import answers
from scorer_service.core.wire.interface import StoreInterface
from scorer_service.web.auth import Guards
from scorer_service.web.directory import StoreDirectory, call_store
from scorer_service.web.models import READ_STORE_ERRORS, LabelIssue

MAX_LIMIT = 10_000


def add_label_issue_routes(app: FastAPI, directory: StoreDirectory, guards: Guards) -> None:
    @app.get(
        "/v1/runs/{run}/label-issues",
        response_model=list[LabelIssue],  # type: ignore[valid-type]  # a model made at import time
        responses=READ_STORE_ERRORS,
        **guards.reads(),
    )
    async def label_issues(
        run: str = Path(..., min_length=1, max_length=200, description="run name"),
        threshold: float = Query(
            0.5, gt=0.0, lt=1.0, description="noise probability above which a label is suspect"
        ),
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
    ) -> list[answers.LabelIssue]:
        """Likely mislabeled samples, most likely first: noise probability (a two-component mixture on
        each sample's mean loss), the label trained on and the model's latest prediction (-1: not sent)."""
        return await call_store(directory, run, StoreInterface.label_issues, threshold, limit)
