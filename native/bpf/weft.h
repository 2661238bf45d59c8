/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layouts of weft's BPF maps: shared by the programs (lib/maps.h) and mirrored, field by field, by the
 * encoders the agent and the plugin write them with (native/bpf/maps.ts; a unit test checks the sizes). Change
 * one, change the other, and bump WEFT_MAPS_VERSION: an agent finding pins of another version replaces them.
 *
 * Addresses are 16 bytes in network order for both families: IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one
 * key type serves both and an IPv4 prefix of length n is an LPM prefix of length 96 + n.
 */
#ifndef WEFT_H
#define WEFT_H

#include <linux/types.h>

#define WEFT_MAPS_VERSION 1

struct weft_addr {
	__u8 bytes[16];
};

/* weft_endpoints: a pod on this node, by its address. Written by the plugin at ADD, removed at DEL. */
struct weft_endpoint {
	__u32 ifindex;         /* the pod's host-side veth */
	__u8 mac[6];           /* the pod's eth0 */
	__u8 gateway_mac[6];   /* its bridge's: the source MAC the pod sees on what we deliver (the plugin knows it) */
	__u32 flags;           /* reserved (policy) */
};
#define WEFT_MAX_ENDPOINTS 8192

/* weft_nodes: a remote node's pod CIDR → where to tunnel it. Written by the agent from the node list. */
struct weft_lpm_key {
	__u32 prefixlen;   /* 96 + n for IPv4 */
	struct weft_addr addr;
};
struct weft_node {
	struct weft_addr ip;   /* the node's underlay address */
	__u8 vtep_mac[6];      /* its VTEP MAC: the inner destination MAC flannel's VTEPs expect */
	__u16 flags;           /* WEFT_NODE_IPV6: ip is IPv6 */
};
#define WEFT_NODE_IPV6 1
#define WEFT_MAX_NODE_CIDRS 16384

/* weft_config: one entry, this node. The programs pass everything to the kernel until READY is set. */
struct weft_config {
	__u32 flags;           /* WEFT_CONFIG_* */
	__u32 vtep_ifindex;    /* the collect-metadata VXLAN device */
	__u32 vni;
	__u8 vtep_mac[6];      /* ours: the inner source MAC of what we tunnel */
	__u16 reserved;
	__u32 version;         /* WEFT_MAPS_VERSION of the agent that wrote it */
};
#define WEFT_CONFIG_READY 1
/*
 * Zero UDP checksums on IPv4 tunnels: the outer checksum costs a pass over the packet and IPv4 VXLAN receivers
 * accept zero (RFC 7348); flannel.1 and weft's kernel-mode VTEP, which send computed ones, accept it too
 * (e2e overlay-ebpf-modes, mixed cluster).
 */
#define WEFT_CONFIG_ZERO_CSUM 2
/* kernel datapath mode with NetworkPolicy: the programs enforce policy and hand every packet to the kernel path. */
#define WEFT_CONFIG_POLICY_ONLY 4
/* Some endpoint of this node is selected by a NetworkPolicy: without it, no program reads the policy maps. */
#define WEFT_CONFIG_POLICY 8
/*
 * An egress the pod's rules deny toward an address outside the cluster network may be a Service's virtual IP,
 * which the kernel path DNATs to a pod the rules do allow: such packets go on marked WEFT_MARK_EGRESS_PENDING and
 * the check runs again after DNAT, in to_pod (a pod of this node) or to_tunnel (another node's). The agent's
 * nftables forward chain drops whatever is still marked and leaves for anything but the bridge or the VTEP (the
 * Service was not one, or had no such backend). Set only while that rule is in place; else such packets drop here.
 */
#define WEFT_CONFIG_DEFER_EGRESS 16
#define WEFT_MARK_EGRESS_PENDING 0x00040000

/* weft_cluster: the cluster networks (an LPM of prefixes → 1), for the deferral above. */
#define WEFT_MAX_CLUSTER_CIDRS 8

/*
 * NetworkPolicy (agent/policy/): each local pod selected by a policy has a rule set per direction, written by the
 * agent only. A set is immutable once referenced: an update writes a new set, points the pod at it (one map
 * update), then deletes the old set, so there is never a window in which the pod is open or dark.
 */
/* weft_policy_endpoints: a local pod's address → its rule sets (0 = not isolated in that direction). */
struct weft_policy_endpoint {
	__u32 ingress_set;
	__u32 egress_set;
};
#define WEFT_MAX_POLICY_ENDPOINTS 8192

/* weft_policy: (set, peer prefix) → the ports that peer may use; the longest prefix decides (agent/policy/compile.ts). */
struct weft_policy_key {
	__u32 prefixlen;   /* 32 (the set) + 96 + n for IPv4, 32 + n for IPv6 */
	__u32 set;
	struct weft_addr addr;
};
#define WEFT_POLICY_MAX_PORTS 16
#define WEFT_PROTO_ANY 0   /* every protocol and port: a rule without ports */
struct weft_port_range {
	__u8 protocol;     /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP or WEFT_PROTO_ANY */
	__u8 reserved;
	__u16 first;       /* host order, inclusive */
	__u16 last;
	__u16 reserved2;
};
struct weft_policy_ports {
	__u32 count;       /* ranges in use; 0 = deny (an ipBlock's except) */
	__u32 reserved;
	struct weft_port_range ranges[WEFT_POLICY_MAX_PORTS];
};
#define WEFT_MAX_POLICY_ENTRIES 262144

/*
 * weft_policy_ct: connections a policed pod's checks allowed, so that their replies pass the other direction's
 * check and a connection is checked once. Keyed by the packet's tuple and the direction of the check that saw it.
 */
enum weft_direction { WEFT_INGRESS = 0, WEFT_EGRESS = 1 };
struct weft_ct_key {
	struct weft_addr src;
	struct weft_addr dst;
	__u16 sport;       /* network order */
	__u16 dport;
	__u8 protocol;
	__u8 direction;    /* enum weft_direction */
	__u16 reserved;
};
struct weft_ct_entry {
	__u32 set;         /* the rule set that allowed it: another set (a policy update) checks it again */
	__u32 reserved;
};
#define WEFT_MAX_POLICY_CONNECTIONS 65536

/* weft_policy_host: this node's own addresses: traffic between a pod and its node is always allowed (probes). */
#define WEFT_MAX_HOST_ADDRS 64

/* weft_policy_stats: per-CPU allowed and denied packets, by local pod address and direction. */
struct weft_stats_key {
	struct weft_addr addr;
	__u32 direction;
};
struct weft_stats {
	__u64 allowed;
	__u64 denied;
};

/* weft_counters: per-CPU packet counters, one per program and verdict (every path ends in one). */
enum weft_counter {
	/* from_pod: the pod's host veth, ingress */
	WEFT_FROM_POD_LOCAL = 0,       /* redirected into a pod on this node */
	WEFT_FROM_POD_REMOTE,          /* tunnelled to another node */
	WEFT_FROM_POD_PASS_MISS,       /* not a pod address we know: the kernel path (Services, outside, host) */
	WEFT_FROM_POD_PASS_NAT,        /* a flow the kernel NATs (kube-proxy): the kernel path */
	WEFT_FROM_POD_PASS_NOT_IP,     /* ARP, …: the kernel path */
	WEFT_FROM_POD_PASS_MTU,        /* would not fit the tunnel: the kernel path (ICMP fragmentation needed) */
	WEFT_FROM_POD_PASS_NOT_READY,  /* the agent has not configured the datapath yet */
	WEFT_FROM_POD_PASS_ERROR,      /* a helper failed: the kernel path */
	WEFT_FROM_POD_PASS_KERNEL_MODE, /* --datapath kernel: policy checked, forwarding is the kernel's */
	/* from_tunnel: the VTEP, ingress */
	WEFT_FROM_TUNNEL_LOCAL,        /* redirected into a pod on this node */
	WEFT_FROM_TUNNEL_PASS_MISS,
	WEFT_FROM_TUNNEL_PASS_NAT,
	WEFT_FROM_TUNNEL_PASS_NOT_IP,
	WEFT_FROM_TUNNEL_PASS_NOT_READY,
	WEFT_FROM_TUNNEL_PASS_ERROR,
	/* to_tunnel: the VTEP, egress (what the kernel routes there) */
	WEFT_TO_TUNNEL_KEYED,          /* tunnel key set from weft_nodes */
	WEFT_TO_TUNNEL_HAD_KEY,        /* already keyed (redirected by from_pod) */
	WEFT_TO_TUNNEL_DROP_MISS,      /* no node for the destination: the device could not send it anyway */
	WEFT_TO_TUNNEL_DROP_NOT_IP,
	WEFT_TO_TUNNEL_DROP_ERROR,
	WEFT_TO_TUNNEL_KERNEL_MODE,    /* --datapath kernel: the VTEP forwards by its FDB */
	/* to_pod: the pod's host veth, egress (what the kernel path delivers to the pod) */
	WEFT_TO_POD_PASS,              /* allowed, or no policy: on to the pod */
	/* policy verdicts, whichever program checked */
	WEFT_POLICY_DROP_INGRESS,      /* a pod's ingress policy denied it */
	WEFT_POLICY_DROP_EGRESS,       /* a pod's egress policy denied it */
	WEFT_POLICY_CT_FULL,           /* allowed, but the connection could not be recorded (its replies are checked) */
	WEFT_POLICY_EGRESS_DEFERRED,   /* denied toward outside the cluster network: checked again after DNAT */
	WEFT_POLICY_KERNEL_REPLY,      /* a reply of a connection the pod opened, as the kernel's conntrack tracks it */
	WEFT_COUNTERS
};

#endif
