"""The predict job."""
