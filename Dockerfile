# docker build -t snapshot-orchestrator .
# docker run --init --stop-timeout 30 --user "$(id -u):$(id -g)" -p 127.0.0.1:8001:8001 \
#   -v "$PWD/data:/app/data" -v "$PWD/triggers:/app/triggers" snapshot-orchestrator
# The mounted folders must be writable by the container's user: --user runs it as you; without it, it runs as
# uid 10001 (snapshot), so `chown -R 10001:10001 data triggers` first.
# Your own job: add it to the image (or mount it) and set SNAPSHOT_COMMAND.
# It listens on 0.0.0.0 inside the container: name the host names people reach it by, e.g.
# -e SNAPSHOT_ALLOWED_HOSTS=snapshots.example.com, so that a page rebinding another name to this machine gets
# 403 (localhost and IP addresses always work); without it the service warns of DNS rebinding at start.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY web ./web
RUN pip install --no-cache-dir . && useradd --system --uid 10001 --user-group --home /app snapshot && mkdir -p data triggers \
    && chown snapshot:snapshot data triggers
USER snapshot
ENV SNAPSHOT_HOST=0.0.0.0 SNAPSHOT_PORT=8001 SNAPSHOT_DATA_DIR=/app/data SNAPSHOT_TRIGGERS_DIR=/app/triggers
EXPOSE 8001
VOLUME ["/app/data", "/app/triggers"]
# The service handles SIGTERM itself (stops the job, exits 0). Run with `docker run --init` so that
# processes the job orphans are reaped by a real init rather than left as zombies.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SNAPSHOT_PORT', '8001'), timeout=4)"
CMD ["snapshot-orchestrator", "serve"]
