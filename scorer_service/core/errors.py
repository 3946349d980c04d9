"""Errors the store raises; the REST layer maps ``KeyError`` subclasses to 404, ``ValueError`` to 400."""


class InvalidBatch(ValueError):
    """A byproduct batch that the store refuses; nothing of it was applied."""


class InvalidQuery(ValueError):
    """A query parameter the store cannot answer (unknown metric, bad range)."""


class NotFound(KeyError):
    """An unknown sample id, round or run."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"
