# One image for every kirim process: workers, beat, Flower, the ingest API, the sandbox.
# Pinned: the base image tag (pin its digest too in your registry mirror) and every Python
# dependency (deploy/constraints.txt, the versions the test suite ran with).
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 KIRIM_LOG_FORMAT=json
WORKDIR /app
# Dependencies first, in their own layer: rebuilt only when pyproject.toml or the pins change,
# not on every code change. Runtime dependencies only (no dev or bench extras).
COPY deploy/constraints.txt /tmp/constraints.txt
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c /tmp/constraints.txt -r /tmp/requirements.txt
COPY README.md ./
COPY producer producer
COPY worker worker
COPY sandbox sandbox
RUN pip install --no-deps -c /tmp/constraints.txt . \
    && rm /tmp/constraints.txt /tmp/requirements.txt \
    && useradd --system --uid 10001 --no-create-home kirim
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001
EXPOSE 8080 5555 9808
CMD ["celery", "-A", "worker.app", "worker", "-P", "threads", "-Q", "otp,sms,wa"]
