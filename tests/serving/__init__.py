"""The api, its dashboard and its OpenAPI contract."""
