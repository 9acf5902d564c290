"""The train job and the gate."""
