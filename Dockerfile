# syntax=docker/dockerfile:1
# Multi-stage, non-root, weights fetched (and sha256-verified) during the build.
#   CPU:  docker build -t trialzone .
#   GPU:  docker build -t trialzone:gpu --build-arg VARIANT=gpu .
#         docker run --gpus all -e TRIALZONE_PROVIDER=cuda trialzone:gpu
# VARIANT=gpu installs onnxruntime-gpu with its CUDA and cuDNN runtime wheels (the `cuda,cudnn`
# extras; CUDA 13 as of onnxruntime-gpu 1.31) and onnx (for TRIALZONE_BATCHING=on), so the image
# needs only the host's NVIDIA driver. BASE may name a CUDA
# image instead, provided it has Python 3.11 at /usr/local/bin (both stages use it, so the
# virtual environment's paths match).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG VARIANT=cpu
RUN apt-get update && apt-get install -y --no-install-recommends npm && rm -rf /var/lib/apt/lists/*
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY models/manifest.toml ./models/manifest.toml
RUN python3.11 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && if [ "$VARIANT" = gpu ]; then \
      /opt/venv/bin/pip install --no-cache-dir ".[gpu]" "onnxruntime-gpu[cuda,cudnn]>=1.20"; \
    else \
      /opt/venv/bin/pip install --no-cache-dir ".[cpu]"; \
    fi
ARG MODELS="u2netp multistyle26 arbitrary_predict arbitrary_transform"
RUN /opt/venv/bin/python -m app models fetch ${MODELS} && rm -rf models/.cache

FROM ${BASE} AS runtime
RUN useradd --system --uid 10001 --home-dir /srv trialzone && mkdir -p /srv/var && chown 10001 /srv/var
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv /srv
COPY assets /srv/assets
WORKDIR /srv
USER 10001
ENV PATH=/opt/venv/bin:$PATH \
    TRIALZONE_MODELS_DIR=/srv/models \
    TRIALZONE_DATABASE_URL=sqlite+aiosqlite:////srv/var/trialzone.db \
    TRIALZONE_STORAGE_URL=file:///srv/var/blobs
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
