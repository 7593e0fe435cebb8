"""Several Parley processes of one deployment behind a real nginx, as in production.

`Cluster` starts N live servers (gunicorn + geventwebsocket, the run's database, a Redis) and
Debian's nginx in front of them with the deployment's own proxy rules (deploy/nginx/proxy.conf,
included as is) and sticky routing by the `parley_route` cookie. Clients talk to `cluster.url`;
a client lands on a process of nginx's choosing, or on one the test picks with `pin`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import redis
import requests

from tests.conftest import BASE_DIR, PASSWORD, LiveServer, free_port
from tests.socket_client import Device

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ROUTE_COOKIE = "parley_route"


def node_names(count: int) -> list[str]:
    return [chr(ord("a") + index) for index in range(count)]


def nginx_config(directory: Path, port: int, backends: dict[str, int]) -> str:
    """The http-level part deploy/nginx/nginx.conf has, for processes on 127.0.0.1 ports."""
    all_servers = "".join(f"        server 127.0.0.1:{p};\n" for p in backends.values())
    own = []
    for name, backend in backends.items():
        others = "".join(
            f"        server 127.0.0.1:{p} backup;\n" for other, p in backends.items() if other != name
        )
        own.append(
            f"    upstream parley_{name} {{\n"
            f"        server 127.0.0.1:{backend} max_fails=1 fail_timeout=10s;\n{others}    }}\n"
        )
    routes = "".join(f'        "{name}" parley_{name};\n' for name in backends)
    answered = "".join(f'        "~:{p}$" "{name}";\n' for name, p in backends.items())
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "".join(f"    {kind}_temp_path {directory / kind};\n" for kind in kinds)
    return f"""daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp}    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" close;
    }}
    upstream parley {{
{all_servers}    }}
{"".join(own)}    map $cookie_parley_route $parley_upstream {{
        default parley;
{routes}    }}
    map $upstream_addr $parley_route_out {{
        default "";
{answered}    }}
    server {{
        listen 127.0.0.1:{port};
        include {BASE_DIR / "deploy" / "nginx" / "proxy.conf"};
    }}
}}
"""


class Nginx:
    def __init__(self, directory: Path, backends: dict[str, int]):
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "nginx.conf"
        self.config.write_text(nginx_config(directory, self.port, backends))
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        self.log = (self.directory / "stderr.log").open("ab")
        command = [NGINX, "-p", str(self.directory), "-c", str(self.config)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.directory / 'error.log').read_text()[-2000:]}")
            try:
                requests.get(f"{self.url}/healthz", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


def children(pid: int) -> list[int]:
    """The ids of `pid`'s child processes."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def forget_processes(env: dict[str, str]) -> None:
    """Start without the beats of processes earlier tests of this run killed (a process that
    stops cleanly takes its own out): each would make the new processes ask every socket to
    resync (app/socket_manager.py)."""
    if env.get("REDIS_URL") and env.get("REDIS_NAMESPACE"):
        client = redis.Redis.from_url(env["REDIS_URL"])
        try:
            client.delete(f"{env['REDIS_NAMESPACE']}:socketio:processes")
        finally:
            client.close()


def terminate_all(servers: list[LiveServer]) -> None:
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()


class Cluster:
    """`count` Parley processes on the settings `env` (one database, one Redis) behind nginx.

    `servers[name]` is the process nginx calls `name` (a, b, c…); `kill(name)` ends one with
    SIGKILL, as a crash would; everything stops when `stack` unwinds."""

    def __init__(self, stack: ExitStack, env: dict[str, str], log_dir: Path, count: int = 2):
        env = {"TRUSTED_PROXIES": "1", **env}
        forget_processes(env)
        self.servers = {name: LiveServer(env, log_dir / f"process-{name}.log") for name in node_names(count)}
        servers = list(self.servers.values())
        # Started together and stopped together (SIGTERM to all, then wait for each).
        for server in servers:
            stack.callback(server.stop)
        stack.callback(terminate_all, servers)
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        self.nginx = Nginx(log_dir / "nginx", {name: server.port for name, server in self.servers.items()})
        stack.callback(self.nginx.stop)
        self.nginx.start()
        self.url = self.nginx.url

    def kill(self, name: str) -> None:
        """SIGKILL to the process's gunicorn worker and master at once, as a crash of the machine
        would (a worker whose master alone was killed would go on serving for a while)."""
        process = self.servers[name].process
        for pid in [*children(process.pid), process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)

    def node_of(self, session: requests.Session) -> str | None:
        """The process nginx last routed `session` to."""
        return session.cookies.get(ROUTE_COOKIE, domain=HOST, path="/")

    def device(
        self,
        name: str,
        username: str,
        password: str = PASSWORD,
        *,
        connect: bool = True,
        transports: tuple[str, ...] = ("websocket",),
    ) -> Device:
        """A device of `username` signed in through nginx on process `name`, its socket opened
        there unless `connect=False`; the caller closes it."""
        device = Device(self.url, connect=False, transports=transports)
        try:
            pin(device.http, name)
            device.sign_in(username, password)
            if connect:
                device.connect()
        except BaseException:
            device.close()
            raise
        return device


HOST = "127.0.0.1"


def pin(session: requests.Session, name: str) -> None:
    """Send `session`'s next requests to process `name` (while it lives): the cookie nginx
    would have set after serving it there."""
    session.cookies.set(ROUTE_COOKIE, name, domain=HOST, path="/")
