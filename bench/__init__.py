"""Parley's benchmarks: load scenarios against a real gunicorn server, side by side with the bare
socket.io transport, and a generator of large databases for history and list timings.

Run `python -m bench --help`; `make bench` runs the default, bounded set.
"""
