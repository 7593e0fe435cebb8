"""Server API: messages (routes on app.server_api.bp)."""
