"""Layer 0: settings, schema, units."""
