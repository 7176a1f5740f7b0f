"""The VideoPoet LM: layers, transformer, chunked cross-entropy."""
