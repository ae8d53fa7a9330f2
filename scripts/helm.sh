#!/usr/bin/env bash
# Builds (once, cached) the helm CLI used by the chart tests, and prints its path.
#   scripts/helm.sh        build if needed, print the path
# Environment: SLUICE_HELM_VERSION (default v3.19.0).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

HELM_VERSION="${SLUICE_HELM_VERSION:-v3.19.0}"
BIN="$SLUICE_TOOLS_CACHE/helm-$HELM_VERSION/bin"

if [ -x "$BIN/helm" ] && "$BIN/helm" version --short >/dev/null 2>&1; then
  echo "$BIN/helm"
  exit 0
fi
need go "install Go 1.25 or newer to build helm, or put helm on PATH and set SLUICE_HELM"
mkdir -p "$BIN"
log "building helm $HELM_VERSION (first time only)"
GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$BIN/../build.log" 2>&1 ||
  die "building helm failed; see $BIN/../build.log"
"$BIN/helm" version --short >/dev/null 2>&1 || die "the built helm does not run; delete $BIN and retry"
echo "$BIN/helm"
