"""Training and evaluating the stance model on FNC-format data."""
