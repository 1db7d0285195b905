"""Models: GGUF facts, memory estimates, the local library (and later catalog and hub)."""
