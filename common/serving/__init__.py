"""The api: forecast lookups from the serving snapshot, online predict, the dashboard."""
