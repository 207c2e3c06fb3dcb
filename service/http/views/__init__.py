"""Blueprints, one per resource; each view has one success response."""
