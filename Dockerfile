# pdp, the decision service: gunicorn (pdp serve) as a non-root user.
#
#   docker build -t pdp .
#   docker run -p 8080:8080 -e PDP_DATABASE_URL=postgresql+psycopg://pdp@db/pdp pdp
#
# The container applies the database migrations when it starts (`pdp serve`), then
# serves on 0.0.0.0:8080. Without PDP_DATABASE_URL it uses a SQLite file in the
# volume /var/lib/pdp (one replica only). See docs/operations.md.
#
# BASE_IMAGE: any Debian-like image whose `python` is Python >= 3.11 with venv,
# e.g. pdp-base:bookworm from scripts/docker-base.sh where Docker Hub is not
# reachable. scripts/docker-smoke.sh builds, runs and checks the image.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/pdp \
    PATH=/opt/pdp/bin:$PATH

RUN python -m venv /opt/pdp \
 && groupadd --system --gid 10001 pdp \
 && useradd --system --uid 10001 --gid pdp --home-dir /var/lib/pdp --create-home \
            --shell /usr/sbin/nologin pdp

# The source tree, owned by root and read-only to the service. pdp finds its
# migrations next to the package (migrations/ beside pdp/), so the package is
# installed in place (editable) rather than copied into site-packages.
WORKDIR /opt/pdp/src
COPY pyproject.toml README.md gunicorn.conf.py ./
COPY migrations ./migrations
COPY pdp ./pdp
# pdp_client (pdp.client re-exports it); also distributed alone as pdp-client.
COPY clients/python/pdp_client ./clients/python/pdp_client
# Optional package index settings for the build (unset: PyPI). Build arguments are
# recorded in the image history: no credentials in these URLs.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
RUN pip install --no-compile -e . "gunicorn>=23" "prometheus_client>=0.20" \
 && python -m compileall -q pdp migrations \
 && pdp --help > /dev/null

USER 10001:10001
WORKDIR /var/lib/pdp
VOLUME ["/var/lib/pdp"]

ENV PDP_BIND=0.0.0.0:8080 \
    PDP_DATABASE_URL=sqlite:////var/lib/pdp/pdp.db

EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('PDP_BIND', '0.0.0.0:8080').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]

CMD ["pdp", "serve"]
