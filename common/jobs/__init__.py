"""The jobs behind the functions: each takes a validated request and returns its JSON."""
