# One image for every kirim process (worker, beat, Flower, ingest API, sandbox).
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY producer producer
COPY worker worker
COPY sandbox sandbox
RUN pip install . && useradd --system --uid 10001 kirim
USER kirim
CMD ["celery", "-A", "worker.app", "worker", "-P", "threads", "-Q", "otp,sms,wa"]
