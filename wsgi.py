"""gunicorn's entry point: gevent patches the standard library before anything else loads."""

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402

from app import create_app  # noqa: E402
from app.gcfreeze import keep_pauses_short  # noqa: E402
from app.webhooks.deliver import start_worker as start_webhook_worker  # noqa: E402

app = create_app()
# Webhook deliveries from the outbox: a worker per server process (app/webhooks/deliver.py).
if app.config["WEBHOOK_DELIVERY"]:
    start_webhook_worker(app)
if app.config["GC_FREEZE_SECONDS"]:
    gevent.spawn(keep_pauses_short, gevent.sleep, app.config["GC_FREEZE_SECONDS"])
