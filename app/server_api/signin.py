"""Server API: signin (routes on app.server_api.bp)."""
