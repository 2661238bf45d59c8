#!/usr/bin/env bash
# weft on a real Kubernetes: a kind cluster (1 control-plane + 2 workers, kind's own CNI disabled) running the
# image built from this checkout with manifests/weft.yaml, then pod → pod across nodes, pod → Service
# (ClusterIP and DNS name, served by CoreDNS, which itself needs the pod network) and `weft-agent status`.
#
#   bash scripts/kind-e2e.sh                  # everything, then deletes the cluster
#   KEEP_CLUSTER=1 bash scripts/kind-e2e.sh   # keeps it: export KUBECONFIG=<printed path> to look around
#
# Needs a Docker engine on linux/amd64 (the image's Node runtime is x64), `kind` and `kubectl` on PATH, and
# network access for the images (debian:bookworm-slim, the Dockerfile's base; kind's node image, agnhost,
# busybox), Debian's apt mirror and the npm registry (the image build installs packages and runs npm ci). kind's
# node image ships the reference CNI plugins weft's conflist chains (portmap) in /opt/cni/bin; weft installs only
# itself.
# Environment: CLUSTER (default weft-e2e), IMAGE (default ghcr.io/weft-net/weft:dev), BASE_IMAGE (the Dockerfile's
# base: debian:bookworm-slim when unset), KIND_NODE_IMAGE (kind's default when unset), TIMEOUT (default 180s, per
# wait).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

CLUSTER="${CLUSTER:-weft-e2e}"
IMAGE="${IMAGE:-ghcr.io/weft-net/weft:dev}"
TIMEOUT="${TIMEOUT:-180s}"
AGNHOST=registry.k8s.io/e2e-test-images/agnhost:2.53
BUSYBOX=registry.k8s.io/e2e-test-images/busybox:1.36.1-1

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
fail() {
  printf '\nkind-e2e: FAILED: %s\n' "$*" >&2
  exit 1
}

# ---- prerequisites -------------------------------------------------------------------------------------------
step "Checking for docker, kind and kubectl"
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || fail "$tool is not on PATH (docker: https://docs.docker.com/engine/install/, kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation, kubectl: https://kubernetes.io/docs/tasks/tools/)"
done
docker info >/dev/null 2>&1 || fail "docker cannot reach a Docker engine (is dockerd running, and may this user use it?)"
arch="$(docker info --format '{{.Architecture}}')"
[[ "$arch" == x86_64 || "$arch" == amd64 ]] || fail "the Docker engine is $arch; the weft image is linux/amd64 only"
info "docker $(docker version --format '{{.Server.Version}}'), $(kind version), kubectl $(kubectl version --client -o json | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | head -n1)"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  fail "a kind cluster named $CLUSTER exists already: delete it (kind delete cluster --name $CLUSTER) or set CLUSTER"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/weft-kind-e2e.XXXXXX")"
export KUBECONFIG="$work/kubeconfig" # the cluster's credentials stay out of ~/.kube/config
created=0

# On exit: on failure, what an operator would look at first; then the cluster goes unless KEEP_CLUSTER=1.
cleanup() {
  local code=$?
  set +e
  if ((code != 0 && created)); then
    step "Diagnostics (exit $code)"
    kubectl get nodes -o wide
    kubectl get pods -A -o wide
    kubectl -n weft describe daemonset weft | tail -n 30
    for pod in $(kubectl -n weft get pods -l app.kubernetes.io/name=weft -o name 2>/dev/null); do
      printf -- '--- %s: last log lines\n' "$pod"
      kubectl -n weft logs "$pod" -c weft-agent --tail=40
      kubectl -n weft exec "$pod" -c weft-agent -- weft-agent status
    done
  fi
  if ((created)); then
    if [[ "${KEEP_CLUSTER:-}" == 1 ]]; then
      step "Keeping cluster $CLUSTER (KEEP_CLUSTER=1): export KUBECONFIG=$KUBECONFIG; delete with: kind delete cluster --name $CLUSTER"
    else
      step "Deleting cluster $CLUSTER"
      kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
      rm -rf "$work"
    fi
  else
    rm -rf "$work"
  fi
  exit "$code"
}
trap cleanup EXIT

# ---- cluster ---------------------------------------------------------------------------------------------------
step "Creating kind cluster $CLUSTER: 1 control-plane + 2 workers, default CNI disabled, pod subnet 10.244.0.0/16"
cat >"$work/kind.yaml" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # No kindnet: weft is the pod network. kube-controller-manager still allocates each node a /24 from podSubnet,
  # which must equal "Network" in the manifest's net-conf.json.
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
nodes:
  - role: control-plane
  - role: worker
  - role: worker
EOF
node_image_args=()
[[ -z "${KIND_NODE_IMAGE:-}" ]] || node_image_args=(--image "$KIND_NODE_IMAGE")
created=1
kind create cluster --name "$CLUSTER" --config "$work/kind.yaml" --kubeconfig "$KUBECONFIG" "${node_image_args[@]}"
mapfile -t nodes < <(kind get nodes --name "$CLUSTER")
info "nodes: ${nodes[*]}"

step "Checking each node's /opt/cni/bin for portmap (chained after weft in 10-weft.conflist)"
for node in "${nodes[@]}"; do
  docker exec "$node" test -x /opt/cni/bin/portmap || fail "$node has no /opt/cni/bin/portmap: kind's node image should ship it"
done
info "portmap present on every node"

# The plugin is a single executable built on the official Node binary, which links libatomic.so.1 and
# libstdc++.so.6: a node without them cannot run it (every pod ADD fails). kind's node image may lack libatomic1.
step "Checking each node for the shared libraries /opt/cni/bin/weft needs (libatomic.so.1, libstdc++.so.6)"
for node in "${nodes[@]}"; do
  missing=()
  docker exec "$node" sh -c 'ldconfig -p | grep -q "libatomic.so.1 "' || missing+=(libatomic1)
  docker exec "$node" sh -c 'ldconfig -p | grep -q "libstdc++.so.6 "' || missing+=(libstdc++6)
  if ((${#missing[@]})); then
    info "WARNING: $node lacks ${missing[*]}: installing them into the node so that the test can go on; real nodes need them too"
    docker exec "$node" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null" ||
      fail "$node: cannot install ${missing[*]}"
  fi
done

# A bridge CNI needs br_netfilter: a pod reaching a Service whose endpoint is on the same bridge gets its reply
# bridged, and without it conntrack never sees the reply to undo the DNAT (docs/troubleshooting.md).
step "Loading br_netfilter and setting net.bridge.bridge-nf-call-iptables=1 on every node"
for node in "${nodes[@]}"; do
  docker exec "$node" modprobe br_netfilter 2>/dev/null || info "$node: modprobe br_netfilter failed (module built in, or missing from the host's /lib/modules)"
  docker exec "$node" sh -c 'echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables' ||
    fail "$node: cannot set net.bridge.bridge-nf-call-iptables (load br_netfilter on the Docker host: sudo modprobe br_netfilter)"
done

# ---- weft --------------------------------------------------------------------------------------------------------
step "Building $IMAGE from $repo"
# The Dockerfile test/e2e/image.test.ts runs through podman (scripts/image/build.sh), here with Docker and, unless
# BASE_IMAGE says otherwise, its default base.
docker build ${BASE_IMAGE:+--build-arg "BASE_IMAGE=$BASE_IMAGE"} -t "$IMAGE" "$repo"
docker run --rm "$IMAGE" --version

step "Loading $IMAGE into the cluster's nodes"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "Applying manifests/weft.yaml with image $IMAGE"
grep -q 'image: ghcr.io/weft-net/weft:' manifests/weft.yaml || fail "manifests/weft.yaml has no ghcr.io/weft-net/weft image to replace"
sed "s#image: ghcr.io/weft-net/weft:[^[:space:]]*#image: $IMAGE#" manifests/weft.yaml >"$work/weft.yaml"
kubectl apply -f "$work/weft.yaml"

step "Waiting for the weft DaemonSet rollout ($TIMEOUT)"
kubectl -n weft rollout status daemonset/weft --timeout="$TIMEOUT"
kubectl -n weft get pods -o wide

step "Waiting for every node to be Ready (the runtime sees 10-weft.conflist) ($TIMEOUT)"
kubectl wait --for=condition=Ready node --all --timeout="$TIMEOUT"
kubectl get nodes -o custom-columns='NODE:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,POD CIDR:.spec.podCIDR,NETWORK UNAVAILABLE:.status.conditions[?(@.type=="NetworkUnavailable")].status'

step "Waiting for CoreDNS (its pods are the first on the pod network) ($TIMEOUT)"
kubectl -n kube-system rollout status deployment/coredns --timeout="$TIMEOUT"

# ---- traffic -----------------------------------------------------------------------------------------------------
mapfile -t workers < <(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
((${#workers[@]} >= 2)) || fail "expected 2 worker nodes, found ${#workers[@]}"

step "Starting server (agnhost netexec) on ${workers[0]} and client (busybox) on ${workers[1]}, and Service server"
kubectl apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: server
  labels: { app: weft-e2e-server }
spec:
  nodeName: ${workers[0]}
  containers:
    - name: server
      image: $AGNHOST
      args: [netexec, --http-port=8080]
      ports: [{ containerPort: 8080 }]
      readinessProbe: { httpGet: { path: /healthz, port: 8080 } }
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  nodeName: ${workers[1]}
  containers:
    - name: client
      image: $BUSYBOX
      command: [sleep, "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: server
spec:
  selector: { app: weft-e2e-server }
  ports: [{ port: 80, targetPort: 8080 }]
EOF
kubectl wait --for=condition=Ready pod/server pod/client --timeout="$TIMEOUT"
kubectl get pods -o wide

server_ip="$(kubectl get pod server -o jsonpath='{.status.podIP}')"
client_ip="$(kubectl get pod client -o jsonpath='{.status.podIP}')"
service_ip="$(kubectl get service server -o jsonpath='{.spec.clusterIP}')"
info "server $server_ip on ${workers[0]}, client $client_ip on ${workers[1]}, Service server $service_ip"
for ip in "$server_ip" "$client_ip"; do
  [[ "$ip" == 10.244.* ]] || fail "pod IP $ip is not in the cluster network 10.244.0.0/16"
done
[[ "${server_ip%.*}" != "${client_ip%.*}" ]] || fail "server and client have IPs of one node subnet ($server_ip, $client_ip): they should be on two nodes"

# fetch URL: GETs URL from the client pod, retrying for up to 30 s (a route can land a moment after the pod).
fetch() {
  local url="$1" attempt output
  for attempt in $(seq 1 15); do
    if output="$(kubectl exec client -- wget -q -O - -T 3 "$url" 2>&1)"; then
      printf '%s' "$output"
      return 0
    fi
    sleep 2
  done
  printf 'last attempt (%s): %s' "$attempt" "$output" >&2
  return 1
}

step "Pod → pod across nodes: client → http://$server_ip:8080/hostname"
got="$(fetch "http://$server_ip:8080/hostname")" || fail "client on ${workers[1]} cannot reach server $server_ip on ${workers[0]} (vxlan: UDP 8472 between the nodes? see weft-agent status below)"
[[ "$got" == server ]] || fail "expected the answer 'server', got '$got'"
info "ok: $got"

step "No SNAT inside the cluster: the server sees the client's pod IP"
got="$(fetch "http://$server_ip:8080/clientip")" || fail "client cannot reach $server_ip:8080/clientip"
[[ "${got%:*}" == "$client_ip" ]] || fail "server saw the client as ${got%:*}, expected its pod IP $client_ip (is the cluster network excluded from masquerade?)"
info "ok: $got"

step "Pod → Service ClusterIP: client → http://$service_ip/hostname"
got="$(fetch "http://$service_ip/hostname")" || fail "client cannot reach Service server at $service_ip (kube-proxy, or br_netfilter for an endpoint on the client's node)"
[[ "$got" == server ]] || fail "expected the answer 'server', got '$got'"
info "ok: $got"

step "Pod → Service by name through CoreDNS: client → http://server.default.svc.cluster.local/hostname"
got="$(fetch "http://server.default.svc.cluster.local/hostname")" || fail "client cannot resolve or reach server.default.svc.cluster.local (CoreDNS pods are on the pod network too)"
[[ "$got" == server ]] || fail "expected the answer 'server', got '$got'"
info "ok: $got"

# ---- status ------------------------------------------------------------------------------------------------------
step "weft-agent status on every node"
for pod in $(kubectl -n weft get pods -l app.kubernetes.io/name=weft -o name); do
  node="$(kubectl -n weft get "$pod" -o jsonpath='{.spec.nodeName}')"
  printf -- '--- %s on %s\n' "$pod" "$node"
  kubectl -n weft exec "$pod" -c weft-agent -- weft-agent status || fail "weft-agent status on $node: not ready (exit status 1) or unreachable (2)"
done

step "kind-e2e: all checks passed"
