"""aircast: the shared package behind the four functions and the CLI."""

__version__ = "0.1.0"
