"""Errors the store raises; the REST layer maps :class:`NotFound` to 404, :class:`Conflict` to 409, the
other two to 400, each with its message."""


class InvalidBatch(ValueError):
    """A byproduct batch that the store refuses; nothing of it was applied."""


class InvalidQuery(ValueError):
    """A query parameter the store cannot answer (unknown metric, bad range)."""


class Conflict(ValueError):
    """A well-formed request that the store's configuration does not allow (a snapshot of a store
    kept in memory only)."""


class NotFound(KeyError):
    """An unknown sample id, round or run."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"
