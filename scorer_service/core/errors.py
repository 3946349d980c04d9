"""Errors the store raises; the REST layer maps :class:`NotFound` to 404, :class:`Conflict` to 409,
:class:`NotReady` to 425, the other two to 400, each with its message."""


class InvalidBatch(ValueError):
    """A byproduct batch that the store refuses; nothing of it was applied."""


class InvalidQuery(ValueError):
    """A query parameter the store cannot answer (unknown metric, bad range)."""


class Conflict(ValueError):
    """A well-formed request that the store's configuration does not allow (a snapshot of a store
    kept in memory only)."""


class NotReady(Conflict):
    """A round that may not be selected yet: the scores are further behind the trainers than the run's
    ``max_staleness`` allows. Ask again once more byproducts are in."""


class NotFound(KeyError):
    """An unknown sample id, round or run."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"
