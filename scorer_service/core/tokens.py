"""Scoped API tokens: a role (``read`` < ``train`` < ``admin``, each including the ones before it)
limited to one run, a run-name prefix, or all runs.

Only a token's sha256 is kept; a presented token is hashed and compared with every kept hash in
constant time (:func:`hmac.compare_digest`), so neither a lookup's timing nor the table tells a
token. The table may live in a JSON file (written whole, then renamed into place), so tokens
survive a restart of whatever holds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from scorer_service.core.errors import InvalidQuery, NotFound

ROLES = ("read", "train", "admin")
# What each role may do, for the messages that refuse a request.
ROLE_DOES = {
    "read": "read scores, rounds, the dashboard and exports",
    "train": "stream byproducts, fetch slices, record rounds and rewind",
    "admin": "create, replace, snapshot and delete runs, and manage the tokens of its runs",
}


@dataclass(frozen=True)
class Grant:
    """What one token may do: ``role`` on run ``run``, or on runs named ``prefix``..., or on all runs
    (neither set)."""

    id: str
    role: str
    run: str | None = None
    prefix: str | None = None
    name: str = ""
    created: float = 0.0

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidQuery(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")
        if self.run is not None and self.prefix is not None:
            raise InvalidQuery("a token is limited to one run or to a run-name prefix, not both")
        if self.run == "" or self.prefix == "":
            raise InvalidQuery("an empty run or prefix would match nothing or everything: leave it out")

    def allows(self, role: str) -> bool:
        """Whether this token's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def covers(self, run: str | None) -> bool:
        """Whether this token reaches run ``run`` (None: every run, as listing all of them needs)."""
        if self.run is None and self.prefix is None:
            return True
        if run is None:
            return False
        return run == self.run if self.run is not None else run.startswith(self.prefix or "")

    def contains(self, other: Grant) -> bool:
        """Whether every run ``other`` reaches is one this token reaches: an admin manages exactly
        the tokens inside its own scope."""
        if self.run is None and self.prefix is None:
            return True
        if self.run is not None:
            return other.run == self.run
        inner = other.run if other.run is not None else other.prefix
        return inner is not None and inner.startswith(self.prefix or "")

    @property
    def scope(self) -> str:
        if self.run is not None:
            return f"run {self.run!r}"
        return f"runs named {self.prefix!r}..." if self.prefix is not None else "all runs"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def find(entries: list[tuple[str, Grant]], secret: str) -> Grant | None:
    """The grant of ``secret`` among ``(hash, grant)`` entries, comparing with all of them in
    constant time each (no early exit on a match either)."""
    digest = hash_token(secret).encode()
    found = None
    for kept, grant in entries:
        if hmac.compare_digest(digest, kept.encode()):
            found = grant
    return found


class TokenTable:
    """The tokens of a service: their hashes and grants by id, kept in ``path`` when given.

    Example::

        table = TokenTable("/snapshots/tokens.json")
        secret, grant = table.create("read", run="cifar")  # the secret is shown once, never kept
        assert find(table.entries(), secret) == grant
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._by_id: dict[str, tuple[str, Grant]] = {}
        if path and os.path.exists(path):
            with open(path) as f:
                for row in json.load(f):
                    kept = row.pop("hash")
                    self._by_id[row["id"]] = (kept, Grant(**row))

    def create(
        self, role: str, *, run: str | None = None, prefix: str | None = None, name: str = ""
    ) -> tuple[str, Grant]:
        """A new token: its secret (returned once, only its hash is kept) and its grant.

        Raises:
            InvalidQuery: an unknown role, both ``run`` and ``prefix``, or an empty one.
        """
        grant = Grant(secrets.token_hex(6), role, run, prefix, name, time.time())
        secret = "cur_" + secrets.token_urlsafe(32)
        self._by_id[grant.id] = (hash_token(secret), grant)
        self._save()
        return secret, grant

    def revoke(self, token_id: str) -> Grant:
        """Forget token ``token_id``; :class:`NotFound` when there is none."""
        if token_id not in self._by_id:
            raise NotFound(f"no token {token_id!r}")
        grant = self._by_id.pop(token_id)[1]
        self._save()
        return grant

    def grants(self) -> list[Grant]:
        return sorted((g for _, g in self._by_id.values()), key=lambda g: (g.created, g.id))

    def entries(self) -> list[tuple[str, Grant]]:
        return list(self._by_id.values())

    def _save(self) -> None:
        if not self.path:
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        rows = [{"hash": kept, **dataclasses.asdict(g)} for kept, g in self._by_id.values()]
        tmp = f"{self.path}.tmp"
        # Only hashes are written, but the grants are the service's policy: owner-only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(rows, f)
        os.replace(tmp, self.path)
