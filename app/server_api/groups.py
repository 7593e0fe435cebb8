"""Server API: groups (routes on app.server_api.bp)."""
