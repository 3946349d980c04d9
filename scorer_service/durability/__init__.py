"""Durable store state: Arrow codec, snapshot and write-ahead log storage, the journal."""
