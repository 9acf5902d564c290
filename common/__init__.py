"""aircast: the shared package behind the five functions and the CLI."""

__version__ = "0.1.0"
