"""Model adaptation: loading bases, building tiny models, resizing embeddings, shared metrics."""
