#!/usr/bin/env bash
# Builds a debian:bookworm-slim equivalent from Debian's own packages and imports it into podman's store, for
# machines that reach Debian's apt mirror but no registry of container images (the Dockerfile's default base,
# debian:bookworm-slim, is then out of reach: scripts/image/build.sh passes this one as BASE_IMAGE instead).
#
#   sudo bash scripts/image/base.sh            # prints the image name; cached: a second run reuses the image
#   REBUILD=1 sudo bash scripts/image/base.sh  # builds and imports it again
#
# What it is: `debootstrap --variant=minbase bookworm` (the Essential and required packages plus apt, as in
# Debian's official images), with the settings debuerreotype gives debian:*-slim: no documentation, man pages or
# locales installed by dpkg, no apt caches kept, compressed indexes, no translations, policy-rc.d refusing to start
# services; apt sources bookworm, bookworm-updates and bookworm-security. About 80 MB, like the official image.
# Environment: BASE_IMAGE (default localhost/weft-base:bookworm), DEBIAN_MIRROR (default
# http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security).
# Needs root, debootstrap and podman (scripts/install-test-deps.sh installs them).
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

BASE_IMAGE="${BASE_IMAGE:-localhost/weft-base:bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SUITE=bookworm

log() { printf 'image/base: %s\n' "$*" >&2; }

if [[ "$(id -u)" != 0 ]]; then
  log "run as root (debootstrap chroots and creates device nodes)"
  exit 1
fi
for tool in debootstrap podman tar; do
  command -v "$tool" >/dev/null || { log "$tool is missing (apt-get install $tool, or scripts/install-test-deps.sh)"; exit 1; }
done

if [[ "${REBUILD:-}" != 1 ]] && podman image exists "$BASE_IMAGE"; then
  log "$BASE_IMAGE exists (REBUILD=1 to build it again)"
  echo "$BASE_IMAGE"
  exit 0
fi

# Under /var/tmp rather than /tmp: a tmpfs /tmp may be mounted nodev, and debootstrap creates /dev's nodes.
rootfs="$(mktemp -d /var/tmp/weft-base-XXXXXX)"
cleanup() {
  # debootstrap mounts /proc and /sys in the target while it installs, and unmounts them; this covers a failure.
  for mountpoint in "$rootfs/proc" "$rootfs/sys"; do
    mountpoint -q "$mountpoint" 2>/dev/null && umount -l "$mountpoint"
  done
  rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT

started=$SECONDS
log "debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR into $rootfs"
# debootstrap unpacks the base before any dpkg configuration of ours exists: the paths the slim excludes name are
# removed after it (below), and the excludes apply to every later apt-get install.
if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1; then
  tail -n 30 "$rootfs.log" >&2
  log "debootstrap failed (full log: $rootfs.log)"
  exit 1
fi
rm -f "$rootfs.log"

# ---- the slim settings (debuerreotype's, which the official debian:*-slim images are made with) ----------------
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Written by weft's scripts/image/base.sh, as in debian:bookworm-slim: no documentation, man pages or locales.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
echo 'force-unsafe-io' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
printf '#!/bin/sh\n# no services start in a container image\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
# Sources as in the official image (deb822), with updates and security: the image's apt-get installs get fixes.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# What debootstrap installed before the excludes applied, and what a build machine's run leaves behind.
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian/overrides,locale,man}/*
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/* \
  "$rootfs"/dev/*
# The runtime mounts /dev, /proc, /sys and writes these; the build host's names stay out of the image.
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"
rm -f "$rootfs/etc/machine-id" && : >"$rootfs/etc/machine-id"

log "importing $BASE_IMAGE"
snapshot="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
tar -C "$rootfs" --numeric-owner --xattrs -c . |
  podman import --quiet \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL org.opencontainers.image.description=\"debian:$SUITE-slim equivalent built by weft's scripts/image/base.sh (debootstrap minbase from $DEBIAN_MIRROR, $snapshot)\"" \
    - "$BASE_IMAGE" >/dev/null
log "$BASE_IMAGE imported ($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}'), $((SECONDS - started)) s)"
echo "$BASE_IMAGE"
