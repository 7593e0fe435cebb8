"""`python -m bench uploadburst`: how long a sign-in takes while heavy animated GIFs are uploaded.

A live Parley (gunicorn, one gevent worker, as `make run` serves it, with the default argon2 cost
so a sign-in costs what it costs in production) is measured in three phases:

1. idle: sequential sign-ins, nothing else running;
2. one account fires `--uploads` uploads of a heavy GIF at once, and sign-ins are timed until
   every upload has its answer;
3. the same with `--uploads` accounts firing one upload each.

The GIF is `heavy_gif()`: 25 frames of 2000×2000 pixels, about 140 kB, 100 megapixels over its
frames (the most `MAX_ANIMATION_PIXELS` accepts by default), each frame with its own palette so
every frame is decoded and re-encoded in full. `--tree` serves another checkout (e.g. a
`git worktree` of an older commit) with this checkout's virtualenv, to compare before and after.
The server is not pinned to a core here: its media workers get the machine's other core.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

from bench import servers
from bench.stats import summary

PASSWORD = "bench-upload-password"  # noqa: S105  (benchmark accounts, on 127.0.0.1 only)


def heavy_gif(frames: int = 25, edge: int = 2000, seed: int = 1) -> bytes:
    """An animated GIF that is small on the wire and costly to decode and re-encode: mostly flat
    frames of `edge`×`edge` with a few hundred scattered pixels, a new palette on every frame."""
    rnd = random.Random(seed)
    images = []
    for _ in range(frames):
        image = Image.new("P", (edge, edge), 0)
        image.putpalette([rnd.randrange(256) for _ in range(768)])
        pixels = image.load()
        for _ in range(400):
            pixels[rnd.randrange(edge), rnd.randrange(edge)] = rnd.randrange(1, 256)
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    return buffer.getvalue()


class UnpinnedServer(servers.Server):
    def command(self) -> list[str]:
        return super().command()[len(servers.pinned(servers.SERVER_CORE)) :]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Client:
    def __init__(self, url: str, username: str):
        self.url, self.username = url, username
        self.http = requests.Session()

    def enter(self, path: str = "register") -> Client:
        """Register the account (`register`) or sign in one more device of it (`login`)."""
        answer = self.http.post(
            f"{self.url}/api/v1/auth/{path}", json={"username": self.username, "password": PASSWORD}
        )
        answer.raise_for_status()
        self.csrf = self.http.get(f"{self.url}/api/v1/auth/csrf").json()["csrf_token"]
        return self

    def upload(self, data: bytes) -> tuple[int, str | None, float]:
        started = time.perf_counter()
        answer = self.http.post(
            f"{self.url}/api/v1/uploads",
            files={"file": ("burst.gif", data, "image/gif")},
            headers={"X-CSRFToken": self.csrf},
            timeout=600,
        )
        seconds = time.perf_counter() - started
        code = None if answer.status_code == 201 else answer.json().get("error", {}).get("code")
        return answer.status_code, code, seconds


def sign_in(url: str, username: str) -> float:
    """Seconds for one password sign-in of a new device."""
    with requests.Session() as http:
        started = time.perf_counter()
        answer = http.post(
            f"{url}/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=600
        )
        seconds = time.perf_counter() - started
    answer.raise_for_status()
    return seconds


def burst(url: str, prober: str, uploaders: list[Client], data: bytes, server_pid: int) -> dict:
    """Fire one upload per entry of `uploaders` at once; time sign-ins until all have answered."""
    done = threading.Event()
    start = threading.Barrier(len(uploaders) + 1)
    peak = {"server_mb": 0.0, "workers_mb": 0.0}

    def one(client: Client):
        start.wait()
        return client.upload(data)

    def sample_memory():
        while not done.wait(0.2):
            for pid in _children(server_pid):
                peak["server_mb"] = max(peak["server_mb"], _rss_mb(pid))
                media = sum(_rss_mb(child) for child in _children(pid))
                peak["workers_mb"] = max(peak["workers_mb"], media)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    logins: list[float] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(len(uploaders)) as pool:
        futures = [pool.submit(one, client) for client in uploaders]
        start.wait()
        time.sleep(0.5)  # let the uploads reach the server before the first sign-in
        while not all(future.done() for future in futures):
            logins.append(sign_in(url, prober))
        results = [future.result() for future in futures]
    done.set()
    sampler.join()
    answers: dict[str, int] = {}
    for status, code, _ in results:
        key = str(status) if code is None else f"{status} {code}"
        answers[key] = answers.get(key, 0) + 1
    return {
        "burst_s": round(time.perf_counter() - started, 1),
        "answers": answers,
        "upload_s": summary([seconds for _, _, seconds in results]),
        "first_login_s": round(logins[0], 2) if logins else None,
        "login_s": summary(logins),
        "load_average": round(os.getloadavg()[0], 1),
        "peak_rss_mb": {key: round(value) for key, value in peak.items()},
    }


def main(tree: Path, db: str, uploads: int, idle_logins: int, out: Path | None) -> dict:
    data = heavy_gif()
    with servers.workspace() as workdir, servers.database(db, workdir) as database_url:
        env = servers.parley_env(database_url, workdir / "instance")
        # Sign-ins cost what they cost in production.
        env.pop("PASSWORD_HASH_TIME_COST")
        env.pop("PASSWORD_HASH_MEMORY_KIB")
        subprocess.run(
            [str(servers.BIN / "flask"), "db", "upgrade"],
            cwd=tree,
            env=servers.clean_environ(env),
            check=True,
            capture_output=True,
            timeout=120,
        )
        server = UnpinnedServer("wsgi:app", env, workdir / "server.log", cwd=tree, health="/healthz")
        server.start()
        try:
            url = server.url
            Client(url, "prober").enter()
            sign_in(url, "prober")  # warm up
            idle = summary([sign_in(url, "prober") for _ in range(idle_logins)])
            Client(url, "uploader").enter()
            devices = [Client(url, "uploader").enter("login") for _ in range(uploads)]
            same = burst(url, "prober", devices, data, server.process.pid)
            many = [Client(url, f"uploader{index}").enter() for index in range(uploads)]
            spread = burst(url, "prober", many, data, server.process.pid)
        finally:
            server.stop()
    result = {
        "tree": str(tree),
        "db": db,
        "gif_bytes": len(data),
        "uploads": uploads,
        "idle_login_s": idle,
        "one_account": same,
        "many_accounts": spread,
    }
    print(json.dumps(result, indent=2))
    print(
        f"sign-in: idle p50 {idle['p50']} s; during {uploads} uploads from one account: first "
        f"{same['first_login_s']} s, p50 {same['login_s']['p50']} s, max {same['login_s']['max']} s; "
        f"from {uploads} accounts: first {spread['first_login_s']} s, p50 {spread['login_s']['p50']} s, "
        f"max {spread['login_s']['max']} s"
    )
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result
