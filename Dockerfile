# One image for every kirim process: workers, beat, Flower, the ingest API, the sandbox.
# Pinned: the base image tag (pin its digest too in your registry mirror) and every Python
# dependency (deploy/constraints.txt, the versions the test suite ran with).
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 KIRIM_LOG_FORMAT=json
WORKDIR /app
# Dependencies first, in their own layer: rebuilt only when pyproject.toml or the pins change,
# not on every code change. The runtime dependencies and the worker, api, flower and cli
# extras (every process the image runs, and the `kirim` command); no dev or bench extras.
# An extra's `kirim[...]` lines name the others, already listed here.
COPY deploy/constraints.txt /tmp/constraints.txt
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(r for r in p['dependencies'] + [r for x in ('worker', 'api', 'flower', 'cli') for r in p['optional-dependencies'][x]] if not r.startswith('kirim')))" \
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
