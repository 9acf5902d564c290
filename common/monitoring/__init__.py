"""Health of the running pipeline: signals computed from the warehouse and the store, one
status for people (`aircast status`), machines (exit code, the api) and alerts (one log
line per condition). Light on purpose: the api imports STATUS_KEY from here."""

STATUS_KEY = "health/status.json"  # written by the monitor job each hour; read by the api
