"""The schedules, local scheduler and run-job."""
