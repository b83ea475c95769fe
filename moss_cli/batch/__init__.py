"""A run over many inputs: expanding them, naming and guarding outputs, manifests, shards, the run loop."""
