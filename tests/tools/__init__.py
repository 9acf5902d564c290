"""Build-time tooling: import layers, packaging, generated docs."""
