# syntax=docker/dockerfile:1
# Two images from one file, with exactly the dependencies locked in uv.lock:
#   - `service` (the default target): `python -m recsvc serve`. Only the project's dependencies:
#     the training group (lightfm, scipy, the importer's Excel reader, cron) stays out.
#   - `trainer`: the same plus the training group, for `python -m training ...` (the schedule).
#
# Python 3.12: lightfm-next ships wheels for 3.12 and later; on 3.11 it compiles from source and
# would need a C toolchain in the image. The build stages resolve nothing: `uv sync --frozen`
# installs the lock as it is, and the runtime stages get only the virtual environment.

FROM python:3.12-slim AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv>=0.5,<1"
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./

FROM build AS build-service
# Dependencies first, in their own layer: code changes do not reinstall them.
RUN uv sync --frozen --no-dev --no-group training --no-install-project
COPY recsvc ./recsvc
COPY training ./training
RUN uv sync --frozen --no-dev --no-group training --no-editable

FROM build AS build-trainer
RUN uv sync --frozen --no-dev --no-install-project
COPY recsvc ./recsvc
COPY training ./training
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.12-slim AS runtime
RUN useradd --create-home --uid 10001 recsvc \
    && mkdir -p /data /var/lib/recsvc/cache /var/lib/recsvc/runs \
    && chown -R recsvc:recsvc /data /var/lib/recsvc
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECSVC_HOST=0.0.0.0 \
    RECSVC_PORT=8000
# Relative paths (the embedded store's default ./var/store, the Redis store's model cache
# ./var/cache, the training runs' ./var/runs) land here. Directories that docker-compose.yml mounts
# named volumes on exist in the image, owned by the service user, so the volumes start writable.
WORKDIR /var/lib/recsvc
USER recsvc

FROM runtime AS trainer
COPY --from=build-trainer /app/.venv /app/.venv
CMD ["python", "-m", "training", "--help"]

FROM runtime AS service
COPY --from=build-service /app/.venv /app/.venv
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('RECSVC_PORT', '8000')}/health/ready\", timeout=2)"]
CMD ["python", "-m", "recsvc", "serve"]
