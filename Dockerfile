# Parley in one image: migrations, then gunicorn with the geventwebsocket worker.

# The base images are build arguments: Docker Hub's by default; `make image-check` builds the same
# file on local Debian bookworm bases (tools/image_check.py). Both have `python3` with its venv
# module and `npm`, and nothing below asks for more.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:24-bookworm-slim

# The browser libraries (the socket.io client; Swagger UI for /api/docs; Chart.js for the admin
# dashboard), from npm as pinned by package-lock.json.
FROM ${NODE_IMAGE} AS vendor
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PARLEY_ENV=production \
    FLASK_APP=app:create_app \
    INSTANCE_PATH=/data \
    PORT=5000 \
    PATH=/opt/venv/bin:$PATH

# Parley's packages live in their own virtualenv (Debian's python3 refuses `pip install` into
# itself); its bin/ comes first in PATH, so `python`, `flask` and `gunicorn` below are the venv's.
WORKDIR /srv/parley
COPY requirements.txt ./
RUN python3 -m venv /opt/venv \
    && pip install -r requirements.txt

COPY . .
COPY --from=vendor /build/node_modules/socket.io-client/dist/socket.io.esm.min.js app/static/vendor/
COPY --from=vendor /build/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
    /build/node_modules/swagger-ui-dist/swagger-ui.css app/static/vendor/swagger-ui/
COPY --from=vendor /build/node_modules/chart.js/dist/chart.umd.min.js app/static/vendor/
# The server pages' and messages' translations: the committed .po files, compiled (`make translations`).
RUN pybabel compile -d app/translations
# The code and the virtualenv stay root's: the server's user can write /data (and /tmp) alone.
RUN useradd --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin parley \
    && mkdir -p /data \
    && chown -R parley:parley /data
USER parley
VOLUME ["/data"]
EXPOSE 5000

# The slim image has no curl: Python asks /healthz (the process and its database answer).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '5000'), timeout=4)"]

# Migrations, then the same server command as `make run`; SECRET_KEY and DATABASE_URL come from the
# environment. PARLEY_MIGRATE=false starts the server alone, for processes beside others that share
# one database (docker-compose.yml migrates once, in its `migrate` service, before they start).
CMD ["sh", "-c", "case \"${PARLEY_MIGRATE:-true}\" in true) flask db upgrade || exit ;; false) ;; *) echo \"PARLEY_MIGRATE must be true or false, got '$PARLEY_MIGRATE'\" >&2; exit 2 ;; esac; exec gunicorn -k geventwebsocket.gunicorn.workers.GeventWebSocketWorker -w 1 --worker-connections 10000 --graceful-timeout 5 --bind 0.0.0.0:${PORT} wsgi:app"]
