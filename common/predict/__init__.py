"""The predict job: batch forecasts for every active location and the serving snapshot."""
