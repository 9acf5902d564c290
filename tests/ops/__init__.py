"""The CLI and the demo."""
