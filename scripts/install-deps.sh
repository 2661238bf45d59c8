# shellcheck shell=bash
# Shared by the scripts that install what they need on Debian 12 (scripts/install-test-deps.sh, scripts/test.sh,
# scripts/demo.sh). Source it, then call the functions; it changes nothing by itself.
#
#   source scripts/install-deps.sh
#   install_missing_packages demo iproute2 nftables     # apt only for what dpkg does not list as installed
#   npm_ci_needed && npm ci --no-audit --no-fund --ignore-scripts

# install_missing_packages TAG PACKAGE...: installs, as root, those of PACKAGE... that are not installed, without
# recommends and keeping existing config files; `apt-get update` is tried 3 times. Prints "TAG: installing …"
# first, and nothing when every package is there. Returns non-zero when apt fails.
install_missing_packages() {
  local tag="$1"
  shift
  local package status attempt
  local missing=()
  for package in "$@"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)"
    [[ "$status" == installed ]] || missing+=("$package")
  done
  ((${#missing[@]})) || return 0

  echo "$tag: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  for attempt in 1 2 3; do
    apt-get update -q && break
    [[ $attempt == 3 ]] && return 1
    sleep 5
  done
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
}

# npm_ci_needed: true when node_modules is missing or older than the lockfile (npm writes
# node_modules/.package-lock.json). Run from the repository root.
npm_ci_needed() {
  [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]
}
