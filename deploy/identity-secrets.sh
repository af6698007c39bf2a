#!/usr/bin/env bash
# Make the identity Secrets of one branch's namespace: branch-identity-directory holds the
# directory's BRANCH_SERVICE_KEY; branch-identity-<service> holds that service's own
# BRANCH_SERVICE_CREDENTIAL (HMAC-SHA256 of the key, as `branch service-credential` prints).
#   deploy/identity-secrets.sh NAMESPACE            # first time
#   deploy/identity-secrets.sh NAMESPACE --rotate   # new key and credentials, then restart
set -euo pipefail
ns=${1:?usage: identity-secrets.sh NAMESPACE [--rotate]}
mode=${2:-}
if kubectl -n "$ns" get secret branch-identity-directory >/dev/null 2>&1 && [ "$mode" != "--rotate" ]; then
  echo "branch-identity-directory exists in $ns; give --rotate to replace the key" >&2
  exit 1
fi
key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(36))')
apply() {
  kubectl -n "$ns" create secret generic "$1" --from-literal="$2=$3" \
    --dry-run=client -o yaml | kubectl apply -f -
}
apply branch-identity-directory BRANCH_SERVICE_KEY "$key"
for service in onsite remote vip research insight; do
  credential=$(python3 -c 'import hashlib, hmac, sys
print(hmac.new(sys.argv[1].encode(), f"service:{sys.argv[2]}".encode(), hashlib.sha256).hexdigest())' "$key" "$service")
  apply "branch-identity-$service" BRANCH_SERVICE_CREDENTIAL "$credential"
done
echo "identity secrets ready in $ns"
