#!/usr/bin/env bash
# The deploy files through the tools that read them (`make lint` runs this):
#   compose     check-jsonschema, the Compose Specification schema
#   kubernetes  kubectl kustomize of the example overlay, validated for Kubernetes 1.32 with the
#               KEDA CRD schemas kept in deploy/k8s/schemas/ (deploy/k8s/validate.py)
#   image       hadolint Dockerfile
#   systemd     systemd-analyze verify of every unit and timer (the ExecStart programs are
#               stubbed in a temporary /opt/kirim: they exist only on a kirim host); any
#               warning fails
#   prometheus  promtool check rules + test rules, and check metrics on a real worker's scrape
# The Python tools come with the dev extra; kubectl, systemd-analyze and promtool are system
# programs: where one is missing its checks print one "skipped: …" line and the rest still run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
K8S_VERSION=${K8S_VERSION:-1.32.0}
failed=0
step() { printf '%-11s %s\n' "$1" "$2"; }
need_pip() {
  [ -x "$BIN/$1" ] && return 0
  step "$2" "FAILED: $BIN/$1 missing (pip install -c deploy/constraints.txt -e '.[dev]')"
  failed=1
  return 1
}

# compose
if need_pip check-jsonschema compose; then
  if out=$("$BIN/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml 2>&1)
  then step compose "ok (compose-spec)"; else echo "$out"; step compose FAILED; failed=1; fi
fi

# kubernetes
if ! command -v kubectl >/dev/null; then
  step kubernetes "skipped: kubectl not installed (it renders the kustomize overlay)"
elif need_pip kubernetes-validate kubernetes; then
  if out=$(kubectl kustomize deploy/k8s/overlays/example \
             | "$BIN/python" deploy/k8s/validate.py -k "$K8S_VERSION" 2>&1)
  then step kubernetes "ok ${out#k8s: }"; else echo "$out"; step kubernetes FAILED; failed=1; fi
fi

# image
if need_pip hadolint image; then
  if out=$("$BIN/hadolint" Dockerfile 2>&1)
  then step image "ok (hadolint Dockerfile)"; else echo "$out"; step image FAILED; failed=1; fi
fi

# systemd
if ! command -v systemd-analyze >/dev/null; then
  step systemd "skipped: systemd-analyze not installed"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/opt/kirim/.venv/bin" "$tmp/units"
  for program in celery uvicorn python; do
    printf '#!/bin/sh\n' >"$tmp/opt/kirim/.venv/bin/$program"
    chmod +x "$tmp/opt/kirim/.venv/bin/$program"
  done
  for unit in deploy/systemd/*.service deploy/systemd/*.timer; do
    sed "s|/opt/kirim/|$tmp/opt/kirim/|g" "$unit" >"$tmp/units/${unit##*/}"
  done
  out=$(systemd-analyze verify --man=no "$tmp"/units/* 2>&1) || true
  if [ -z "$out" ]; then step systemd "ok (systemd-analyze verify, $(ls "$tmp/units" | wc -l) units)"
  else echo "${out//$tmp\/units\//deploy/systemd/}"; step systemd FAILED; failed=1; fi
fi

# prometheus
if ! command -v promtool >/dev/null; then
  step prometheus "skipped: promtool not installed (Debian/Ubuntu: apt-get install prometheus)"
else
  if out=$(promtool check rules deploy/prometheus/kirim-rules.yml 2>&1 \
           && promtool test rules deploy/prometheus/kirim-rules.test.yml 2>&1 \
           && "$BIN/python" deploy/prometheus/scrape_worker.py | promtool check metrics 2>&1)
  then step prometheus "ok (check rules, test rules, check metrics of a worker's scrape)"
  else echo "$out"; step prometheus FAILED; failed=1; fi
fi

exit "$failed"
