"""Server API: users (routes on app.server_api.bp)."""
