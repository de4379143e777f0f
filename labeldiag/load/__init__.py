"""Loading checkpoints, tokenizers and data files."""
