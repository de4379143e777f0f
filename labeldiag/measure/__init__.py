"""Run the model and keep small numbers: logits, pooled features, gradient and training traces."""
