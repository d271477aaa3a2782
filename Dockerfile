# One image for every kirim process: workers, beat, Flower, the ingest API, the sandbox.
# Pinned: the base image tag (pin its digest too in your registry mirror) and every Python
# dependency (deploy/constraints.txt, the versions the test suite ran with).
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 KIRIM_LOG_FORMAT=json
WORKDIR /app
COPY deploy/constraints.txt /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY producer producer
COPY worker worker
COPY sandbox sandbox
RUN pip install -c /tmp/constraints.txt . && rm /tmp/constraints.txt \
    && useradd --system --uid 10001 --no-create-home kirim
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001
EXPOSE 8080 5555 9808
CMD ["celery", "-A", "worker.app", "worker", "-P", "threads", "-Q", "otp,sms,wa"]
