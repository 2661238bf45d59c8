#!/usr/bin/env bash
# Builds the weft image from this checkout's Dockerfile with podman, on a machine that reaches Debian's apt mirror
# and the npm registry but no registry of container images: the base is scripts/image/base.sh's
# localhost/weft-base:bookworm (debootstrap), given to the Dockerfile as BASE_IMAGE. test/e2e/image.test.ts runs
# the result on simulated nodes. With a registry at hand, `docker build .` needs none of this (kind-e2e.sh).
#
#   sudo bash scripts/image/build.sh           # prints the image name; cached
#   REBUILD=1 sudo bash scripts/image/build.sh # base and image again, no layer cache
#
# Cached twice over: the image is labelled with a digest of the build context (the Dockerfile, .dockerignore and
# every file the Dockerfile copies) and the base's image ID; when localhost/weft:dev carries the same digest, no
# build runs. Otherwise podman's layer cache still skips the steps whose inputs did not change (apt, npm ci).
# Environment: IMAGE (default localhost/weft:dev), BASE_IMAGE (default localhost/weft-base:bookworm),
# REBUILD=1, PODMAN_BUILD_ARGS (more `podman build` options).
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

IMAGE="${IMAGE:-localhost/weft:dev}"
export BASE_IMAGE="${BASE_IMAGE:-localhost/weft-base:bookworm}"
LABEL=net.weft.context-digest

log() { printf 'image/build: %s\n' "$*" >&2; }

if [[ "$(id -u)" != 0 ]]; then
  log "run as root"
  exit 1
fi

bash scripts/image/base.sh >/dev/null
base_id="$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")"

# The build context as the Dockerfile sees it: the files .dockerignore lets through (its rules are few: everything
# out, then the files and directories the build stage copies, then tests out again).
context_files() {
  find package.json package-lock.json tsconfig.json native cni agent \
    scripts/build.mjs scripts/build-agent.mjs scripts/build-bpf.mjs scripts/lazy-ip-num-statics.mjs \
    -type f -not -name '*.test.ts' | LC_ALL=C sort
}
digest="$({
  echo "base $base_id"
  sha256sum Dockerfile .dockerignore
  context_files | while read -r file; do [[ -f "$file" ]] && sha256sum "$file"; done
} | sha256sum | cut -d' ' -f1)"

if [[ "${REBUILD:-}" != 1 ]] && podman image exists "$IMAGE" &&
  [[ "$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$IMAGE")" == "$digest" ]]; then
  log "$IMAGE is up to date with this checkout (REBUILD=1 to build it again)"
  echo "$IMAGE"
  exit 0
fi

previous="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
started=$SECONDS
# --network host: the RUN steps (apt-get, npm ci) use the machine's network as it is. Podman's default, a bridge
# network, would create cni-podman0 and NAT rules in the machine's own namespace for every step.
build_args=(--network host --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "$LABEL=$digest" -t "$IMAGE")
[[ "${REBUILD:-}" != 1 ]] || build_args+=(--no-cache)
# npm ci reaches the registry with this machine's CAs, which may include a TLS-intercepting proxy's: the bundle is
# mounted for the RUN steps only (never in a layer) and named to npm by the Dockerfile's NPM_CONFIG_CAFILE.
host_ca=/etc/ssl/certs/ca-certificates.crt
if [[ -s "$host_ca" ]]; then
  build_args+=(--volume "$host_ca:/run/weft-build-ca.crt:ro" --build-arg NPM_CONFIG_CAFILE=/run/weft-build-ca.crt)
fi
# shellcheck disable=SC2206 # word splitting of PODMAN_BUILD_ARGS is the point
build_args+=(${PODMAN_BUILD_ARGS:-})
log "podman build ${build_args[*]} ."
# --layers: podman's default, said here because the cache is what makes a rebuild after a source change quick.
podman build --layers "${build_args[@]}" . >&2

# What earlier builds leave: the previous image, now untagged, and the top of each earlier build stage (dist/ and
# node_modules, about 1 GB each), which no image uses. Removing one removes its untagged parents down to the first
# layer another image still uses, so the cache of the newest build (apt, npm ci) stays. Only images of this
# Dockerfile's build stage are touched (their history has its `npm ci`), never another dangling image.
current="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
stages=()
for id in $(podman images --all --quiet --no-trunc --filter dangling=true); do
  podman history --no-trunc --format '{{.CreatedBy}}' "$id" 2>/dev/null | grep -q 'npm ci --no-audit --no-fund --ignore-scripts' &&
    stages+=("$(podman image inspect --format '{{.Created.Unix}}' "$id") $id")
done
if ((${#stages[@]} > 1)); then
  # Newest first; all but the newest (this build's) go.
  printf '%s\n' "${stages[@]}" | sort -rn | tail -n +2 | while read -r _ id; do
    podman rmi "$id" >/dev/null 2>&1 || true
  done
fi
log "$IMAGE built ($(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}'), $((SECONDS - started)) s)"
echo "$IMAGE"
