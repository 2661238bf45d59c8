/* SPDX-License-Identifier: Apache-2.0 */
/* Flow-based VXLAN: the tunnel key (VNI, remote node) set on the packet, for the collect-metadata VTEP to use. */
#ifndef WEFT_TUNNEL_H
#define WEFT_TUNNEL_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "../weft.h"

/* flannel's VTEPs send with the kernel's default TTL; so do we. */
#define WEFT_TUNNEL_TTL 64

/* 0 on success. */
static __always_inline int weft_set_tunnel_key(struct __sk_buff *skb, const struct weft_config *config, const struct weft_node *node)
{
	struct bpf_tunnel_key key = {};
	__u64 flags = 0;

	key.tunnel_id = config->vni;
	key.tunnel_ttl = WEFT_TUNNEL_TTL;
	if (node->flags & WEFT_NODE_IPV6) {
		/* IPv6 remote addresses go in network order, IPv4 in host order (bpf_skb_set_tunnel_key converts it). */
		__builtin_memcpy(key.remote_ipv6, node->ip.bytes, 16);
		flags |= BPF_F_TUNINFO_IPV6;
	} else {
		__u32 ip;

		__builtin_memcpy(&ip, &node->ip.bytes[12], 4);
		key.remote_ipv4 = bpf_ntohl(ip);
		if (config->flags & WEFT_CONFIG_ZERO_CSUM)
			flags |= BPF_F_ZERO_CSUM_TX;
	}
	return bpf_skb_set_tunnel_key(skb, &key, sizeof(key), flags) < 0 ? -1 : 0;
}

#endif
