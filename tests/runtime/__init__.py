"""The run audit and logs."""
