#!/usr/bin/env bash
# Runs the whole test suite: unit, golden, kernel (network namespaces) and control-plane tests.
# Needs root for the namespace tests (they are skipped with a printed reason otherwise).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 2
# The real control plane for the agent tests; those tests skip with a printed reason without it.
if [ -z "${SWITCHBOARD_K8S_UP:-}" ] && [ -x ../shared/k8s/up.sh ]; then
  export SWITCHBOARD_K8S_UP="$(cd ../shared/k8s && pwd)/up.sh"
fi
swift build --build-tests || exit 2
# One test at a time: end-to-end tests create namespaces and start processes, and 2 cores are few.
swift test --skip-build --no-parallel
status=$?
# The bench harness's smoke run (small sizes, asserts nothing about speed; writes to a scratch folder).
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
  out=$(mktemp -d)
  "$(swift build --show-bin-path)/switchboard-bench" --quick --connects 100 --output "$out" >/dev/null || status=1
  rm -rf "$out"
else
  echo "SKIP switchboard-bench --quick: needs root and ip netns"
fi
exit $status
