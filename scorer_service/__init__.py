"""The hardness store: per-sample scores and the central subset selection, in layers.

- ``core``: state columns, learning-rate log, byproduct batches, dedup, update rules, queries;
- ``submodular``: set functions, greedy optimizers, partitioned selection;
- ``selection``: selector registry, schedules, sampling, the diversity term, round planning;
- ``durability``: Arrow codec, snapshots and write-ahead log storage, the journal;
- ``config``, ``shard`` and ``store``: the store's settings, one shard of a store, and
  :class:`~scorer_service.store.HardnessStore` over its shards;
- ``web``: the FastAPI application (REST, dashboard, export, Prometheus);
- ``ray``: the thin Ray shells (store actor, diversity block tasks, Serve deployment).

Each layer imports only those listed before it; everything up to ``store`` is plain Python and
numpy (no Ray, no web framework, no torch). ``.importlinter`` states and CI checks the rules.
"""
