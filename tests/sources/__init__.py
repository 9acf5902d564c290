"""The sources against local HTTP servers serving the public APIs' documented shapes."""
