"""The wire schema: everything a client and the store agree on, and nothing else of the store.

- :mod:`.batch`: what a byproduct batch carries (columns, wire dtypes, per-batch fields), the output
  sketch, the Ray actor names;
- :mod:`.interface`: the store's methods, declared once, and which of them only read;
- :mod:`.answers`: the store's answers as typed values;
- :mod:`.validation`: a batch checked against the schema (:class:`~.validation.ByproductBatch`);
- :mod:`.split`: a checked batch split by store shard, and the parts' acknowledgements joined;
- :mod:`.arrow`: the Arrow IPC codec of columns over HTTP.

The client library imports this package and :mod:`scorer_service.core.errors` (a contract in
``.importlinter``). numpy and pyarrow only.
"""
