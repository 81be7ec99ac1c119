"""On-disk caches: log-mel patches, frozen-backbone embeddings, and the entry rules they share."""
