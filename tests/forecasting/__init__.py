"""Features (no leak), model versions."""
