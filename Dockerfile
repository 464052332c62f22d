# One image for the API and the workers (compose picks the command).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The serving install: ONNX Runtime, no PyTorch (add the 'torch' extra for RRR_ENGINE=torch).
COPY pyproject.toml README.md alembic.ini ./
COPY api api
COPY worker worker
COPY shared shared
COPY detection detection
COPY rrr rrr
COPY training training
COPY migrations migrations
COPY weights weights
RUN pip install .
# Installed into site-packages, the code no longer sits beside weights/: name the shipped model.
ENV RRR_VAR_DIR=/data RRR_STORAGE_DIR=/data/uploads RRR_WEIGHTS_PATH=/app/weights/rrr-b0-v3.pt
# The processes run as root inside the container (the volumes are root's); the container is the
# isolation and tasks are JSON only, so Celery's superuser warning is switched off on purpose.
ENV C_FORCE_ROOT=1
EXPOSE 8000
CMD ["rrr", "up", "--host", "0.0.0.0"]
