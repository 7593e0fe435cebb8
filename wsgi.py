"""gunicorn's entry point: gevent patches the standard library before anything else loads."""

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402

from app import create_app  # noqa: E402
from app.gcfreeze import keep_pauses_short  # noqa: E402

app = create_app()
if app.config["GC_FREEZE_SECONDS"]:
    gevent.spawn(keep_pauses_short, gevent.sleep, app.config["GC_FREEZE_SECONDS"])
