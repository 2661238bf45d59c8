#!/usr/bin/env bash
# The demo, on this one machine, as root: three simulated nodes (network namespaces) running weft-agent, two pods
# on each made by dist/weft, a pod×pod TCP matrix, a SNAT check and where to look. scripts/demo.mjs does the work;
# this installs and builds what it needs first (Debian 12: apt for what is missing, npm ci, npm run build).
#
#   bash scripts/demo.sh            # (re)create the demo and show it working; it stays up
#   bash scripts/demo.sh --json     # the same, but the results as one JSON document on stdout
#   bash scripts/demo.sh down       # stop the demo's processes and remove everything it created
#
# Environment: WEFT_SKIP_INSTALL=1 skips apt; WEFT_DEMO_SKIP_SETUP=1 skips apt, npm ci and the build (the tests
# use it: they have built everything already). Setup output goes to ${TMPDIR:-/tmp}/weft-demo-setup.log and is
# shown only when a step fails.
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/install-deps.sh
source scripts/install-deps.sh

if [[ "$(id -u)" != 0 ]]; then
  echo "demo: run as root (it creates network namespaces)" >&2
  exit 1
fi

down=0
for arg in "$@"; do
  case "$arg" in
    down) down=1 ;;
    up | --json) ;;
    *) echo "demo: unknown argument '$arg' (up, down, --json)" >&2; exit 2 ;;
  esac
done

setup_log="${TMPDIR:-/tmp}/weft-demo-setup.log"
# setup MESSAGE COMMAND...: runs COMMAND with its output in the setup log; on failure shows the log's end.
setup() {
  local message="$1"
  shift
  echo "demo: $message" >&2
  if ! "$@" >>"$setup_log" 2>&1 </dev/null; then
    echo "demo: $message failed; last lines of $setup_log:" >&2
    tail -n 40 "$setup_log" >&2
    exit 1
  fi
}

# The build is stale when an output is missing or a source is newer than the oldest output.
build_needed() {
  local output oldest=""
  for output in dist/weft dist/weft-agent dist/agent/weft-agent.mjs; do
    [[ -e "$output" ]] || return 0
    if [[ -z "$oldest" || "$oldest" -nt "$output" ]]; then oldest="$output"; fi
  done
  [[ -n "$(find native cni agent scripts/build.mjs scripts/build-agent.mjs package-lock.json -newer "$oldest" -print -quit)" ]]
}

if ((!down)) && [[ "${WEFT_DEMO_SKIP_SETUP:-}" != 1 ]]; then
  : >"$setup_log"
  if [[ "${WEFT_SKIP_INSTALL:-}" != 1 ]]; then
    # iproute2: ip, bridge; nftables: the agent's masquerade; util-linux: nsenter; binutils: strip (the build).
    # clang, libbpf-dev: the build compiles the eBPF datapath; libbpf1: the agent loads it.
    packages=(ca-certificates iproute2 nftables util-linux binutils clang libbpf-dev libbpf1)
    command -v npm >/dev/null || packages+=(nodejs npm)
    setup "checking Debian packages (${packages[*]})" install_missing_packages demo "${packages[@]}"
  fi
  if npm_ci_needed; then
    setup "npm ci" npm ci --no-audit --no-fund --ignore-scripts
  fi
  if build_needed; then
    setup "npm run build (dist/weft, dist/weft-agent)" env PATH="$PWD/node_modules/.bin:$PATH" npm run build
  fi
fi

# The pinned Node when it is there; `down` also works from a clone that never ran npm ci.
node=node_modules/.bin/node
[[ -x "$node" ]] || node="$(command -v node || true)"
if [[ -z "$node" ]]; then
  echo "demo: no Node.js found (run bash scripts/demo.sh once to install it)" >&2
  exit 1
fi
exec "$node" scripts/demo.mjs "$@"
