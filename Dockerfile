# chatsite production image: uvicorn workers serving chatsite.asgi, static files by WhiteNoise.
# Docker has no engine on the development machines; the commands below are the ones tested there (docs/deploy.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_DEBUG=false \
    WEB_CONCURRENCY=2

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY manage.py ./
COPY chatsite ./chatsite
COPY chat ./chat
COPY templates ./templates
COPY static ./static
# collectstatic needs a key to import settings, not the production one.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

RUN useradd --create-home --uid 10001 chatsite && mkdir -p /tmp/prometheus && chown chatsite /tmp/prometheus
USER chatsite

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
# Migrations run once per deploy (compose's `migrate` service), not in every web process.
CMD ["sh", "-c", "rm -rf /tmp/prometheus/* && exec uvicorn chatsite.asgi:application --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY} --proxy-headers --forwarded-allow-ips='*' --ws-max-size 1048576 --ws-ping-timeout 60 --no-access-log"]
