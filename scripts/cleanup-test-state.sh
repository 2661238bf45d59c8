#!/usr/bin/env bash
# Removes what kernel tests leave behind when a run crashes, and only that: everything is found by the test
# prefix `wft-` (`wft-<run>-` when a run id is given).
#
#   bash scripts/cleanup-test-state.sh          # every run's leftovers: do not use while another run is going on
#   bash scripts/cleanup-test-state.sh 1a2b3c   # one run (what test/support/global-setup.ts calls on teardown)
#
# In order:
#   1. podman nodes (test/support/podman.ts): each is a temp dir `${TMPDIR:-/tmp}/wft-<run>-…` holding its own
#      containers.conf, storage and state, marked by a file `podman-node`. `podman rm -af` is run with that
#      config, inside the node's netns when it still exists, else in a fresh empty netns (`unshare --net`) so
#      that the CNI DEL of the plugins (portmap's iptables, …) can never touch the root namespace.
#   2. processes still inside a `wft-*` netns (agents, servers started by tests), killed by PID, then the netns.
#   3. mounts left under our temp dirs (container shm), then the temp dirs themselves.
#   4. libcni's cache (/var/lib/cni/results/<network>-<container>-<ifname>, fixed path in podman 4.3) and the
#      reference host-local's default data dir (/var/lib/cni/networks/<network>) for networks named `wft-*`;
#      `wft-*` conflists in /etc/cni/net.d and plugin copies in /opt/cni/bin (test/support/podman.ts).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

run="${1:-}"
if [[ -n "$run" && ! "$run" =~ ^[a-z0-9]+$ ]]; then
  echo "cleanup-test-state: bad run id '$run'" >&2
  exit 2
fi
prefix="wft-${run:+$run-}"
tmp="${TMPDIR:-/tmp}"
tmp="${tmp%/}"
status=0

# 1. podman nodes
for dir in "$tmp/$prefix"*/; do
  [[ -f "$dir/podman-node" ]] || continue
  netns="$(cat "$dir/netns" 2>/dev/null || true)"
  if [[ -n "$netns" && "$netns" == "$prefix"* && -e "/run/netns/$netns" ]]; then
    enter=(nsenter "--net=/run/netns/$netns")
  else
    enter=(unshare --net)
  fi
  CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf" \
    timeout 120 "${enter[@]}" podman rm --all --force --time 0 >/dev/null 2>&1 \
    || { echo "cleanup-test-state: podman rm in $dir failed" >&2; status=1; }
done

# 2. processes in our netns, then the netns
for netns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
  [[ "$netns" == "$prefix"* ]] || continue
  for pid in $(ip netns pids "$netns" 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  ip netns del "$netns" 2>/dev/null || { echo "cleanup-test-state: cannot delete netns $netns" >&2; status=1; }
done

# 3. mounts under our temp dirs (deepest first), then the dirs
if command -v findmnt >/dev/null; then
  findmnt -rn -o TARGET | grep -F "$tmp/$prefix" | sort -r | while read -r target; do
    umount -l "$target" 2>/dev/null || true
  done
fi
for path in "$tmp/$prefix"*; do
  [[ -e "$path" ]] || continue
  rm -rf --one-file-system "$path" 2>/dev/null || { echo "cleanup-test-state: cannot remove $path" >&2; status=1; }
done

# 4. libcni cache and host-local default data dirs of our networks; our conflists and plugin copies in the
#    runtimes' default dirs (after step 1: podman's DEL reads them)
rm -rf /var/lib/cni/results/"$prefix"* /var/lib/cni/networks/"$prefix"* 2>/dev/null || true
rm -f /etc/cni/net.d/"$prefix"* /opt/cni/bin/"$prefix"* 2>/dev/null || true

exit $status
