/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Beside kube-proxy: a flow the kernel NATs (a Service's DNAT, a masquerade) must stay on the kernel path, or its
 * replies would reach the pod un-NATed. The bpf_skb_ct_lookup kfunc finds the flow's conntrack entry in either
 * direction; one that carries NAT sends the packet to the kernel. Flows on the fast path never enter conntrack,
 * so for them the lookup is a miss.
 */
#ifndef WEFT_CONNTRACK_H
#define WEFT_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "packet.h"

/* The kernel's struct bpf_ct_opts (net/netfilter/nf_conntrack_bpf.c), 16 bytes since ct_zone_id was added. */
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u16 ct_zone_id;
	__u8 ct_zone_dir;
	__u8 reserved[3];
};

/* Only the field we read; its offset is relocated against the running kernel's BTF (CO-RE). */
struct nf_conn {
	unsigned long status;
} __attribute__((preserve_access_index));

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple__sz,
					 struct bpf_ct_opts *opts, __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

#define WEFT_IPS_SRC_NAT (1 << 4)
#define WEFT_IPS_DST_NAT (1 << 5)
#define WEFT_CURRENT_NETNS (-1)

/* True when the kernel tracks this TCP/UDP flow with NAT. */
static __always_inline int weft_is_nat_flow(struct __sk_buff *skb, const struct weft_packet *p)
{
	struct bpf_ct_opts opts = { .netns_id = WEFT_CURRENT_NETNS, .l4proto = p->l4proto };
	struct bpf_sock_tuple tuple = {};
	struct nf_conn *ct;
	__u32 size;
	int nat;

	if (p->l4proto != IPPROTO_TCP && p->l4proto != IPPROTO_UDP)
		return 0;
	if (p->ipv6) {
		__builtin_memcpy(tuple.ipv6.saddr, p->src.bytes, 16);
		__builtin_memcpy(tuple.ipv6.daddr, p->dst.bytes, 16);
		tuple.ipv6.sport = p->sport;
		tuple.ipv6.dport = p->dport;
		size = sizeof(tuple.ipv6);
	} else {
		__builtin_memcpy(&tuple.ipv4.saddr, &p->src.bytes[12], 4);
		__builtin_memcpy(&tuple.ipv4.daddr, &p->dst.bytes[12], 4);
		tuple.ipv4.sport = p->sport;
		tuple.ipv4.dport = p->dport;
		size = sizeof(tuple.ipv4);
	}
	ct = bpf_skb_ct_lookup(skb, &tuple, size, &opts, sizeof(opts));
	if (!ct)
		return 0;
	nat = (ct->status & (WEFT_IPS_SRC_NAT | WEFT_IPS_DST_NAT)) != 0;
	bpf_ct_release(ct);
	return nat;
}

#endif
