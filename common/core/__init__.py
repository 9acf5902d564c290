"""Layer 0, imported by everything, importing nothing else of common: settings, errors, logs, time,
and the one schema of tables, views and variables.
"""
