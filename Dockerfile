# syntax=docker/dockerfile:1
# shim: Open Responses <-> Chat Completions.  Build: docker build -t shim .
# Run:   docker run -p 8080:8080 -e SHIM_UPSTREAM_URL=http://host:8000/v1 -e SHIM_DIALECT=vllm shim
# Every setting is an environment variable (see the README's configuration reference). The image
# has no compiler, so it never starts the embedded llama.cpp upstream: an upstream is required.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shim ./shim
COPY mappings ./mappings
# Wheels for the shim and every dependency, so the runtime stage installs offline and keeps no pip cache.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /home/shim shim \
    && mkdir -p /data && chown shim:shim /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels shim && rm -rf /wheels
ENV SHIM_HOST=0.0.0.0 \
    SHIM_PORT=8080 \
    SHIM_DATA_DIR=/data \
    SHIM_NO_EMBEDDED=1 \
    PYTHONUNBUFFERED=1
USER shim
WORKDIR /home/shim
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SHIM_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["shim", "serve"]
