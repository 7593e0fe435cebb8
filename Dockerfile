# Parley in one image: migrations, then gunicorn with the geventwebsocket worker.

# The browser libraries (the socket.io client; Swagger UI for /api/docs; Chart.js for the admin
# dashboard), from npm as pinned by package-lock.json.
FROM node:20-slim AS vendor
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PARLEY_ENV=production \
    FLASK_APP=app:create_app \
    INSTANCE_PATH=/data \
    PORT=5000

WORKDIR /srv/parley
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
COPY --from=vendor /build/node_modules/socket.io-client/dist/socket.io.esm.min.js app/static/vendor/
COPY --from=vendor /build/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
    /build/node_modules/swagger-ui-dist/swagger-ui.css app/static/vendor/swagger-ui/
COPY --from=vendor /build/node_modules/chart.js/dist/chart.umd.min.js app/static/vendor/
# The server pages' and messages' translations: the committed .po files, compiled (`make translations`).
RUN pybabel compile -d app/translations
RUN useradd --create-home --uid 10001 parley \
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
