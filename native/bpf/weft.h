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
	WEFT_COUNTERS
};

#endif
