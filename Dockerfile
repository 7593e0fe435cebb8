# Parley in one image: migrations, then gunicorn with the geventwebsocket worker.
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
RUN useradd --create-home --uid 10001 parley \
    && mkdir -p /data \
    && chown -R parley:parley /data
USER parley
VOLUME ["/data"]
EXPOSE 5000

# The same server command as `make run`; SECRET_KEY and DATABASE_URL come from the environment.
CMD ["sh", "-c", "flask db upgrade && exec gunicorn -k geventwebsocket.gunicorn.workers.GeventWebSocketWorker -w 1 --worker-connections 10000 --graceful-timeout 5 --bind 0.0.0.0:${PORT} wsgi:app"]
