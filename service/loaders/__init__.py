"""The loaders: the only code that reads model artifacts and reference files (no code runs from them)."""
