"""gunicorn's entry point: gevent patches the standard library before anything else loads."""

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import socketio  # noqa: E402
from app.gcfreeze import keep_pauses_short  # noqa: E402
from app.jobs.queue import start_worker as start_job_worker  # noqa: E402
from app.metrics import start_listener as start_metrics_listener  # noqa: E402
from app.socket_manager import start_early  # noqa: E402
from app.webhooks.deliver import start_worker as start_webhook_worker  # noqa: E402

app = create_app()
# The socket.io client manager subscribes (and, across processes, beats) from the start, not from
# the first socket (app/socket_manager.py).
start_early(socketio.server)
# Webhook deliveries from the outbox: a worker per server process (app/webhooks/deliver.py).
if app.config["WEBHOOK_DELIVERY"]:
    start_webhook_worker(app)
# Queued jobs left by other processes, and the periodic jobs: a poller per server process
# (app/jobs/queue.py); the jobs a process queues itself it runs at once either way.
if app.config["JOB_WORKER"]:
    start_job_worker(app)
# /metrics alone on METRICS_BIND:METRICS_PORT (app/metrics.py), when metrics are on.
if app.config["METRICS_ENABLED"] and app.config["METRICS_PORT"]:
    start_metrics_listener(app)
if app.config["GC_FREEZE_SECONDS"]:
    gevent.spawn(keep_pauses_short, gevent.sleep, app.config["GC_FREEZE_SECONDS"])
