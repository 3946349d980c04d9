"""How much memory a store needs, and how many shards (actors) spread it over the nodes when the count
is chosen automatically (``store_shards=0``)."""

from __future__ import annotations

import math

from scorer_service.config import StoreConfig

# Bytes a shard holds per sample beyond the record (the cold columns), and the share of a node's
# memory the store's shards may take together when the count is chosen automatically.
COLD_BYTES = 40
NODE_SHARE = 0.5


def bytes_per_sample(config: StoreConfig) -> int:
    """A store's memory per sample: the 64-byte record, the cold columns, the kept sketches."""
    return 64 + COLD_BYTES + 4 * config.byproducts.output_width + 2 * config.byproducts.embedding_dim


def auto_shards(config: StoreConfig, node_memory: list[float]) -> int:
    """How many shards a store of ``config.n`` samples needs so that no node holds more than
    :data:`NODE_SHARE` of its memory in store shards, spread one per node in turn (at least 1)."""
    need = config.n * bytes_per_sample(config)
    per_node = NODE_SHARE * min(node_memory) if node_memory else float("inf")
    shards = max(1, math.ceil(need / per_node)) if per_node > 0 else 1
    return int(min(shards, config.n))
