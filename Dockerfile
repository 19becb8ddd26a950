# CloudTally API image: `docker build -t cloudtally . && docker run -p 8000:8000 -v cloudtally-data:/data cloudtally`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CLOUDTALLY_DATA_DIR=/data

WORKDIR /opt/cloudtally
COPY pyproject.toml README.md ./
COPY app ./app
COPY connectors ./connectors
COPY optimizers ./optimizers
COPY migrations ./migrations
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /data cloudtally \
 && mkdir -p /data && chown cloudtally /data

USER cloudtally
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["cloudtally", "serve", "--host", "0.0.0.0", "--port", "8000"]
