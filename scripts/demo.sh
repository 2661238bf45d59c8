#!/usr/bin/env bash
# The demo: installs what it needs (Debian packages, npm packages), builds dist/weft, then runs scripts/demo.mjs.
#
#   bash scripts/demo.sh          # bring it up and show it working
#   bash scripts/demo.sh down     # remove everything it created
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "$(id -u)" != 0 ]]; then
  echo "demo: run as root (it creates network namespaces)" >&2
  exit 1
fi

if [[ "${1:-}" != down ]]; then
  need=()
  command -v ip >/dev/null || need+=(iproute2)
  command -v nsenter >/dev/null || need+=(util-linux)
  command -v npm >/dev/null || need+=(nodejs npm)
  command -v strip >/dev/null || need+=(binutils)
  if ((${#need[@]})); then
    echo "demo: installing ${need[*]}"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
  fi
  if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "demo: npm ci"
    npm ci --no-audit --no-fund --ignore-scripts >/dev/null
  fi
  if [[ ! -x dist/weft ]] || [[ -n "$(find cni native scripts/build.mjs -newer dist/weft -print -quit)" ]]; then
    echo "demo: building dist/weft"
    node_modules/.bin/node scripts/build.mjs
  fi
fi
exec node_modules/.bin/node scripts/demo.mjs "$@"
