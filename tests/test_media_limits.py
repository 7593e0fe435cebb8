"""What an upload may cost: the animation budget, uploads in processing per user (in this process
and across processes through Redis), the queue of a process, and the media worker's memory, CPU
and wall-clock limits. Only refusal codes and counts are asserted, never timings: a task is held
in processing by a gate in front of the worker, not by a slow file."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import pytest
from PIL import Image

from app.concurrency import WorkerPool, _Worker
from app.media import services
from bench.uploadburst import heavy_gif
from config import Config, ConfigError
from tests.conftest import PASSWORD, LiveServer, server_env
from tests.test_media import image_bytes, stored_files, upload, upload_rows, uploaded

SMALL_PNG = image_bytes("PNG", (8, 8))


def animation(frames: int, size: tuple[int, int]) -> bytes:
    """`frames` frames of alternating colours (equal neighbours would be merged on saving)."""
    images = [Image.new("P", size, index % 2) for index in range(frames)]
    for image in images:
        image.putpalette([0, 0, 0, 255, 255, 255])
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return buffer.getvalue()


@cache
def heavy() -> bytes:
    """The benchmark's GIF: 25 frames of 2000×2000, seconds of CPU to decode and re-encode."""
    return heavy_gif()


@cache
def memory_hungry_png() -> bytes:
    """6000×6000 RGBA (36 megapixels, under the pixel limit): 144 MB once decoded."""
    buffer = io.BytesIO()
    Image.new("RGBA", (6000, 6000), (10, 20, 30, 255)).save(buffer, "PNG")
    return buffer.getvalue()


def signed_in(application, username: str, address: str = "10.9.0.1"):
    client = application.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    answer = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    return client


def refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    return error


class Gate:
    """Holds every task in front of its worker (inside the pool) until opened."""

    def __init__(self):
        self.entered = threading.Semaphore(0)
        self.opened = threading.Event()

    def wait_for(self, count: int) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=30), "a task never reached the pool"


@pytest.fixture
def media_app(make_app):
    """`make_app`, whose media workers are stopped at the end of the test."""
    made = []

    def make(**settings: str):
        application = make_app(**settings)
        made.append(application)
        return application

    yield make
    for application in made:
        pool = application.extensions.get("parley.media_pool")
        if pool is not None:
            pool.close()


@pytest.fixture
def gate(monkeypatch):
    gate = Gate()
    ask = _Worker.ask

    def held(worker, task, timeout):
        gate.entered.release()
        assert gate.opened.wait(30)
        return ask(worker, task, timeout)

    monkeypatch.setattr(_Worker, "ask", held)
    yield gate
    gate.opened.set()


# --- the animation budget ------------------------------------------------------------------


def test_an_animation_over_the_frames_times_pixels_budget_is_refused(app, make_user, login, monkeypatch):
    make_user("alice")
    alice = login("alice")
    monkeypatch.setitem(app.config, "MAX_ANIMATION_PIXELS", 40_000)
    before = stored_files(app)
    error = refused(upload(alice, animation(5, (100, 100)), "a.gif"), 400, "animation_too_large")
    assert error["fields"] == {"file": "5 frames of 100×100"}
    assert upload_rows(app) == 0 and stored_files(app) == before
    assert uploaded(alice, animation(4, (100, 100)), "b.gif")["w"] == 100


def test_by_default_an_animation_may_decode_100_megapixels(app, make_user, login):
    make_user("alice")
    alice = login("alice")
    assert app.config["MAX_ANIMATION_PIXELS"] == 100_000_000
    # 26 frames of 2000×2000: 104 megapixels (the old budget was four times larger).
    refused(upload(alice, animation(26, (2000, 2000)), "big.gif"), 400, "animation_too_large")
    assert upload_rows(app) == 0


def test_an_animation_with_too_many_frames_is_refused(app, make_user, login):
    make_user("alice")
    alice = login("alice")
    refused(upload(alice, animation(1001, (2, 2)), "long.gif"), 400, "animation_too_large")
    assert uploaded(alice, animation(1000, (2, 2)), "fits.gif")["w"] == 2


# --- uploads in processing -----------------------------------------------------------------


def test_a_user_has_at_most_two_uploads_in_processing(app, make_user, login, gate):
    make_user("alice")
    make_user("bob")
    alices = [login("alice") for _ in range(3)]
    bob = login("bob")
    with ThreadPoolExecutor(3) as pool:
        held = [pool.submit(upload, device, SMALL_PNG, "a.png") for device in alices[:2]]
        gate.wait_for(2)
        third = upload(alices[2], SMALL_PNG, "a.png")
        refused(third, 429, "too_many_uploads")
        assert third.headers["Retry-After"] == "5"
        # Another user is not held back by Alice's uploads: Bob's waits for a worker.
        bobs = pool.submit(upload, bob, SMALL_PNG, "b.png")
        gate.opened.set()
        assert [future.result().status_code for future in held] == [201, 201]
        assert bobs.result().status_code == 201
    assert upload_rows(app) == 3
    # The slots are given back: Alice uploads again.
    assert uploaded(alices[2], SMALL_PNG, "c.png")["w"] == 8


def test_uploads_in_processing_are_counted_across_processes_through_redis(media_app, make_user, redis_url):
    import redis

    first, second = media_app(REDIS_URL=redis_url), media_app(REDIS_URL=redis_url)
    alice_id = make_user("alice")
    alice = signed_in(second, "alice")
    key = f"{first.config['REDIS_NAMESPACE']}:media:busy:{alice_id}"
    counter = redis.Redis.from_url(redis_url)
    # Two uploads in processing in the first process...
    with first.app_context(), services.processing_slot(alice_id), services.processing_slot(alice_id):
        assert counter.get(key) == b"2" and 0 < counter.ttl(key) <= 2 * 30 + 60
        # ...and the second process refuses a third.
        refused(upload(alice, SMALL_PNG, "a.png"), 429, "too_many_uploads")
        assert counter.get(key) == b"2"
    assert counter.get(key) == b"0"
    assert uploaded(alice, SMALL_PNG, "a.png")["w"] == 8
    assert counter.get(key) == b"0"


def test_a_full_queue_answers_server_busy(media_app, make_user, gate):
    application = media_app(MEDIA_WORKERS="1", MEDIA_QUEUE="1")
    make_user("alice")
    make_user("bob")
    alice, bob = signed_in(application, "alice", "10.9.0.1"), signed_in(application, "bob", "10.9.0.2")
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(upload, alice, SMALL_PNG, "a.png")
        gate.wait_for(1)
        busy = upload(bob, SMALL_PNG, "b.png")
        refused(busy, 503, "server_busy")
        assert busy.headers["Retry-After"] == "5"
        gate.opened.set()
        assert held.result().status_code == 201
    assert upload_rows(application) == 1
    assert uploaded(bob, SMALL_PNG, "b.png")["w"] == 8


# --- the worker's own limits ---------------------------------------------------------------


def _pool(application) -> WorkerPool:
    return application.extensions["parley.media_pool"]


def test_a_worker_over_its_memory_budget_is_refused_and_the_pool_keeps_working(media_app, make_user):
    application = media_app(MEDIA_WORKER_MEMORY_MB="256")
    make_user("alice")
    alice = signed_in(application, "alice")
    before = stored_files(application)
    refused(upload(alice, memory_hungry_png(), "big.png"), 422, "media_too_complex")
    assert upload_rows(application) == 0 and stored_files(application) == before
    assert uploaded(alice, SMALL_PNG, "small.png")["w"] == 8


def test_the_memory_hungry_image_fits_the_default_budget(app, make_user, login):
    make_user("alice")
    assert uploaded(login("alice"), memory_hungry_png(), "big.png")["w"] == 6000


def test_a_worker_over_its_cpu_budget_is_refused_and_the_pool_keeps_working(media_app, make_user):
    application = media_app(MEDIA_CPU_SECONDS="1")
    make_user("alice")
    alice = signed_in(application, "alice")
    refused(upload(alice, heavy(), "heavy.gif"), 422, "media_too_complex")
    assert upload_rows(application) == 0
    assert uploaded(alice, SMALL_PNG, "small.png")["w"] == 8


def test_a_task_over_its_time_limit_kills_the_worker_which_is_replaced(media_app, make_user):
    application = media_app(MEDIA_TIMEOUT="1", MEDIA_CPU_SECONDS="600")
    make_user("alice")
    alice = signed_in(application, "alice")
    timed_out = upload(alice, heavy(), "heavy.gif")
    refused(timed_out, 503, "media_timeout")
    assert timed_out.headers["Retry-After"] == "5"
    assert _pool(application).replaced == 1 and upload_rows(application) == 0
    assert uploaded(alice, SMALL_PNG, "small.png")["w"] == 8


def test_a_worker_that_dies_is_replaced(app, make_user, login):
    make_user("alice")
    alice = login("alice")
    assert uploaded(alice, SMALL_PNG, "a.png")["w"] == 8
    pool = _pool(app)
    for worker in list(pool._idle):
        worker.process.kill()
        worker.process.wait()
    assert uploaded(alice, SMALL_PNG, "b.png")["w"] == 8


def test_a_worker_answer_naming_a_file_outside_its_folder_is_not_believed(tmp_path):
    from app.media.inspect import Media

    (tmp_path / "main.png").write_bytes(b"x")
    good = {"kind": "image", "mime": "image/png", "path": "main.png", "width": 1, "height": 1}
    assert Media.from_answer(good, tmp_path).path == tmp_path / "main.png"
    for bad in (
        {**good, "path": "../etc/passwd"},
        {**good, "path": "missing.png"},
        {**good, "mime": "text/html"},
        {**good, "kind": "video"},
        {**good, "width": -1},
        {**good, "width": "wide"},
    ):
        with pytest.raises(ValueError):
            Media.from_answer(bad, tmp_path)


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEDIA_WORKERS", "0"),
        ("MEDIA_QUEUE", "none"),
        ("MEDIA_UPLOADS_PER_USER", "0"),
        ("MEDIA_TIMEOUT", "0"),
        ("MEDIA_CPU_SECONDS", "-1"),
        ("MEDIA_WORKER_MEMORY_MB", "100"),
        ("MAX_ANIMATION_PIXELS", "0"),
    ],
)
def test_malformed_media_limits_stop_start_up(tmp_path, name, value):
    with pytest.raises(ConfigError) as error:
        Config.from_env(server_env("sqlite://", tmp_path, **{name: value}))
    assert error.value.name == name


def test_under_gevent_an_overrunning_worker_is_killed_and_replaced(database_url, instance_path, tmp_path):
    """The same limits in the real server: gunicorn's gevent worker, gevent's subprocess."""
    import requests

    settings = {"MEDIA_TIMEOUT": "1", "MEDIA_CPU_SECONDS": "600", "MEDIA_WORKERS": "1"}
    server = LiveServer(server_env(database_url, instance_path, **settings), tmp_path / "live.log").start()
    try:
        with requests.Session() as http:
            base = server.url
            answer = http.post(
                f"{base}/api/v1/auth/register", json={"username": "gifmaker", "password": PASSWORD}
            )
            assert answer.status_code == 201
            headers = {"X-CSRFToken": http.get(f"{base}/api/v1/auth/csrf").json()["csrf_token"]}

            def send(name: str, data: bytes):
                return http.post(f"{base}/api/v1/uploads", files={"file": (name, data)}, headers=headers)

            assert send("small.png", SMALL_PNG).status_code == 201
            timed_out = send("heavy.gif", heavy())
            assert timed_out.status_code == 503 and timed_out.json()["error"]["code"] == "media_timeout"
            assert timed_out.headers["Retry-After"] == "5"
            too_big = send("big.gif", animation(26, (2000, 2000)))
            assert too_big.json()["error"]["code"] == "animation_too_large"
            assert send("small.png", SMALL_PNG).status_code == 201
    finally:
        server.stop()
    assert "media worker" in (tmp_path / "live.log").read_text()  # the replacement was logged
