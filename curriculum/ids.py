"""Sample ids that travel with the samples through any ``DataLoader``."""

from __future__ import annotations

from typing import Any

import torch


class WithIds(torch.utils.data.Dataset[tuple[Any, ...]]):
    """A map-style dataset whose items lead with their index: ``(id, *item)``.

    The id is the index the sampler asked for, so it survives shuffling, ``num_workers > 0`` and
    ``drop_last``; the default collate turns it into a tensor of ids per batch. A dataset that reads
    whole batches (``dataset[list_of_indices]``) gets the list, and the ids come as one tensor.

    Args:
        dataset: any map-style dataset; an item that is a tuple or list is unpacked after the id.

    Example::

        loader = DataLoader(curriculum.WithIds(train_set), batch_size=256, sampler=sampler)
        for ids, x, y in loader:
            ...
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        item = self.dataset[index]
        if not isinstance(index, int):
            # A list of indices from a BatchSampler (``batch_size=None``): the dataset reads a batch.
            index = torch.as_tensor(index, dtype=torch.int64)
        return (index, *item) if isinstance(item, tuple | list) else (index, item)
