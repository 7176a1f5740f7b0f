"""The training harness shared by every trainer (tokenizer, codec, LM)."""
