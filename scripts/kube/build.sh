#!/usr/bin/env bash
# Builds kube-apiserver and kube-proxy v1.20.2 from Debian bookworm's `kubernetes` source package, once, into
# $WEFT_KUBE_CACHE/v1.20.2/bin (default /var/cache/weft-kube): the real servers the tests run against. A second
# run finds the binaries and returns at once. As root on Debian 12; needs deb-src for bookworm main (added here,
# from the mirror apt already uses) and Go 1.19 from Debian (golang-go). About 6 minutes on 2 cores, cold.
#
# One fix is applied to the source: the vendored github.com/modern-go/reflect2 v1.0.1 crashes the whole API server
# (SIGSEGV in map iteration) when built with Go >= 1.18, the first time it encodes a map with json-iterator (any
# pretty-printed or YAML answer); Debian's reflect2 1.0.2 replaces it. Kubernetes 1.20 builds in GOPATH mode
# (hack/lib/init.sh sets GO111MODULE=off): GOFLAGS must not carry -mod=vendor.
#
#   bash scripts/kube/build.sh            build if missing; print the bin directory
#   bash scripts/kube/build.sh --check    exit 0 when the binaries are there, 1 when not (builds nothing)
set -euo pipefail

VERSION=v1.20.2
CACHE="${WEFT_KUBE_CACHE:-/var/cache/weft-kube}"
BIN="$CACHE/$VERSION/bin"
SOURCE_DIR=kubernetes-1.20.5+really1.20.2
WANTED=(kube-apiserver kube-proxy)

have_all() {
  for name in "${WANTED[@]}"; do [[ -x "$BIN/$name" ]] || return 1; done
}

if [[ "${1:-}" == "--check" ]]; then have_all; exit; fi
if have_all; then echo "$BIN"; exit 0; fi
if [[ $(id -u) -ne 0 ]]; then echo "scripts/kube/build.sh: needs root (apt-get, $CACHE)" >&2; exit 2; fi

started=$(date +%s)
log() { echo "kube-build: $* ($(( $(date +%s) - started )) s)" >&2; }

# deb-src from the same mirror as the machine's deb lines.
if ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ && ! grep -qs "^deb-src" /etc/apt/sources.list; then
  mirror=$(grep -hs "^URIs:" /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  mirror=${mirror:-$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
  mirror=${mirror:-http://deb.debian.org/debian}
  cat > /etc/apt/sources.list.d/weft-kube-debsrc.sources <<SRC
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  log "added deb-src for $mirror"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends dpkg-dev golang-go make rsync golang-github-modern-go-reflect2-dev >/dev/null
log "packages installed ($(go version))"

work="$CACHE/src"
mkdir -p "$work" "$BIN"
cd "$work"
if [[ ! -d "$SOURCE_DIR" ]]; then
  apt-get source -qq kubernetes >/dev/null
  log "source unpacked"
fi
cd "$SOURCE_DIR"
vendored=vendor/github.com/modern-go/reflect2
if ! grep -qs "v1.0.2 => github.com/modern-go/reflect2 v1.0.2" vendor/modules.txt; then
  find "$vendored" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$vendored"/
  sed -i 's#^\(\# github.com/modern-go/reflect2\) v1.0.1 => github.com/modern-go/reflect2 v1.0.1#\1 v1.0.2 => github.com/modern-go/reflect2 v1.0.2#; s#^\(\# github.com/modern-go/reflect2 =>\) github.com/modern-go/reflect2 v1.0.1#\1 github.com/modern-go/reflect2 v1.0.2#' vendor/modules.txt
  log "reflect2 1.0.2 swapped in"
fi
env -u GOFLAGS GOPROXY=off CGO_ENABLED=0 HOME="$work/home" make WHAT="cmd/kube-apiserver cmd/kube-proxy" > "$work/make.log" 2>&1 || {
  tail -30 "$work/make.log" >&2
  echo "scripts/kube/build.sh: make failed; the whole log is $work/make.log" >&2
  exit 1
}
log "built"
for name in "${WANTED[@]}"; do install -m 0755 "_output/bin/$name" "$BIN/$name.tmp" && mv "$BIN/$name.tmp" "$BIN/$name"; done
"$BIN/kube-apiserver" --version >&2
echo "$BIN"
