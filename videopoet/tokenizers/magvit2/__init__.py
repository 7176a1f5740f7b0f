"""MAGVIT-v2 video tokenizer: causal 3D CNN autoencoder with LFQ (or FSQ)."""
