"""A user's download of their own data: asked for, built by a queued job into a zip, served to
its owner for a day, then swept (services.py: the rules; archive.py: what the zip holds)."""
