"""OpenAPI links: from a created resource to the routes that take its name.

Clients generated from the document learn that the ``run`` of ``POST /v1/runs`` is the ``{run}`` of
the run's routes, and schemathesis's stateful phase walks exactly these links: create, read, snapshot,
delete, in random orders.
"""

from __future__ import annotations

from typing import Any


def follow(param: str, field: str, *routes: tuple[str, str]) -> dict[str, Any]:
    """A link per ``(method, path)`` in ``routes`` whose path parameter ``param`` is the answer's
    ``field``.

    Args:
        param: the path parameter the created resource fills (``run``).
        field: the field of the creating route's JSON answer that holds it.
        routes: ``(method, path)`` pairs of the routes to link, e.g. ``("get", "/v1/runs/{run}")``.

    Returns:
        The ``links`` object of an OpenAPI response.
    """
    return {
        f"{method.upper()} {path}": {
            "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method,
            "parameters": {param: f"$response.body#/{field}"},
        }
        for method, path in routes
    }


RUN_ROUTES = (
    ("get", "/v1/runs/{run}"),
    ("get", "/v1/runs/{run}/rounds"),
    ("get", "/v1/runs/{run}/top"),
    ("get", "/v1/runs/{run}/label-issues"),
    ("get", "/v1/runs/{run}/samples"),
    ("post", "/v1/runs/{run}/snapshot"),
    ("post", "/v1/runs/{run}/rewind"),
    ("delete", "/v1/runs/{run}"),
)
