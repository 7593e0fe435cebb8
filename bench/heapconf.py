"""gunicorn config for `python -m bench heap`: the worker traces its allocations and writes a
tracemalloc snapshot whenever `$HEAP_DIR/take-<name>` appears (to `$HEAP_DIR/<name>.snap`)."""

import os
import tracemalloc


def post_worker_init(worker):
    import gevent

    folder = os.environ["HEAP_DIR"]
    tracemalloc.start(1)

    def serve_requests():
        while True:
            for entry in os.listdir(folder):
                if entry.startswith("take-"):
                    name = entry[len("take-") :]
                    tracemalloc.take_snapshot().dump(os.path.join(folder, f"{name}.part"))
                    os.rename(os.path.join(folder, f"{name}.part"), os.path.join(folder, f"{name}.snap"))
                    os.remove(os.path.join(folder, entry))
            gevent.sleep(0.2)

    gevent.spawn(serve_requests)
