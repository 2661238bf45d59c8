/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Beside kube-proxy: a flow the kernel NATs (a Service's DNAT, a masquerade) must stay on the kernel path, or its
 * replies would reach the pod un-NATed. The bpf_skb_ct_lookup kfunc finds the flow's conntrack entry in either
 * direction; one that carries NAT sends the packet to the kernel. Flows on the fast path never enter conntrack,
 * so for them the lookup is a miss.
 *
 * A flow may also collide with a NAT'd one: Linux shares a source port between connections to different
 * destinations, so a pod with a Service connection A:P → VIP:80, DNATed to B:7013, can open A:P → B:7013 directly
 * (or do so while the Service connection's entry waits in TIME_WAIT). Both look the same to B, and the direct
 * flow's replies match the NAT'd entry's reply tuple. On the kernel path conntrack sees the clash when the direct
 * flow starts and gives it another source port; on the fast path nobody would, and the direct connection fails
 * (test/e2e/services.test.ts). So the first packet of a flow — a TCP SYN, or any UDP packet, which has no
 * handshake — is also looked up inverted: when its reply tuple belongs to a NAT'd entry, the kernel takes the
 * flow, and its own entry (with the new source port) keeps the rest of it there.
 */
#ifndef WEFT_CONNTRACK_H
#define WEFT_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
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
#define WEFT_CT_DIR_ORIGINAL 0 /* IP_CT_DIR_ORIGINAL: opts.dir as the lookup sets it */
#define WEFT_TCP_FLAGS_OFFSET 13
#define WEFT_TCP_SYN 0x02
#define WEFT_TCP_ACK 0x10

enum weft_ct { WEFT_CT_NONE, WEFT_CT_PLAIN, WEFT_CT_NAT };

/* Fills the kfunc's tuple with src → dst as given; returns its size for the packet's family. */
static __always_inline __u32 weft_ct_tuple(struct bpf_sock_tuple *tuple, const struct weft_packet *p, const struct weft_addr *src,
					   const struct weft_addr *dst, __u16 sport, __u16 dport)
{
	if (p->ipv6) {
		__builtin_memcpy(tuple->ipv6.saddr, src->bytes, 16);
		__builtin_memcpy(tuple->ipv6.daddr, dst->bytes, 16);
		tuple->ipv6.sport = sport;
		tuple->ipv6.dport = dport;
		return sizeof(tuple->ipv6);
	}
	__builtin_memcpy(&tuple->ipv4.saddr, &src->bytes[12], 4);
	__builtin_memcpy(&tuple->ipv4.daddr, &dst->bytes[12], 4);
	tuple->ipv4.sport = sport;
	tuple->ipv4.dport = dport;
	return sizeof(tuple->ipv4);
}

/* What conntrack has for this tuple (src → dst as given, either direction of an entry). */
static __always_inline enum weft_ct weft_ct_lookup(struct __sk_buff *skb, const struct weft_packet *p, const struct weft_addr *src,
						   const struct weft_addr *dst, __u16 sport, __u16 dport)
{
	struct bpf_ct_opts opts = { .netns_id = WEFT_CURRENT_NETNS, .l4proto = p->l4proto };
	struct bpf_sock_tuple tuple = {};
	__u32 size = weft_ct_tuple(&tuple, p, src, dst, sport, dport);
	struct nf_conn *ct;
	enum weft_ct found;

	ct = bpf_skb_ct_lookup(skb, &tuple, size, &opts, sizeof(opts));
	if (!ct)
		return WEFT_CT_NONE;
	found = (ct->status & (WEFT_IPS_SRC_NAT | WEFT_IPS_DST_NAT)) ? WEFT_CT_NAT : WEFT_CT_PLAIN;
	bpf_ct_release(ct);
	return found;
}

/*
 * True when the kernel's conntrack saw this packet's flow start the other way: the packet, inverted, is the
 * original direction of a tracked connection, so this end (for what the kernel path delivers to a pod: the pod)
 * sent first. Inverted because of NAT: the reply of a Service connection, un-DNAT'd, comes from the virtual IP,
 * and (virtual IP → pod) is in neither of the entry's tuples, while (pod → virtual IP) is its original one.
 */
static __always_inline int weft_ct_is_reply(struct __sk_buff *skb, const struct weft_packet *p)
{
	struct bpf_ct_opts opts = { .netns_id = WEFT_CURRENT_NETNS, .l4proto = p->l4proto };
	struct bpf_sock_tuple tuple = {};
	struct nf_conn *ct;
	__u32 size;
	int reply;

	if (p->l4proto != IPPROTO_TCP && p->l4proto != IPPROTO_UDP)
		return 0;
	size = weft_ct_tuple(&tuple, p, &p->dst, &p->src, p->dport, p->sport);
	ct = bpf_skb_ct_lookup(skb, &tuple, size, &opts, sizeof(opts));
	if (!ct)
		return 0;
	reply = opts.dir == WEFT_CT_DIR_ORIGINAL;
	bpf_ct_release(ct);
	return reply;
}

/*
 * True when the packet may open a flow: any UDP packet, a TCP SYN without ACK (or one whose flags cannot be read).
 * weft_parse does not walk IPv6 extension headers: for IPv6, TCP is the first header after IP.
 */
static __always_inline int weft_may_open_flow(struct __sk_buff *skb, const struct weft_packet *p)
{
	__u32 offset = sizeof(struct ethhdr);
	__u8 byte;

	if (p->l4proto != IPPROTO_TCP)
		return 1;
	if (p->ipv6) {
		offset += sizeof(struct ipv6hdr);
	} else {
		if (bpf_skb_load_bytes(skb, offset, &byte, 1) < 0)
			return 1;
		offset += (byte & 0x0f) * 4;
	}
	if (bpf_skb_load_bytes(skb, offset + WEFT_TCP_FLAGS_OFFSET, &byte, 1) < 0)
		return 1;
	return (byte & (WEFT_TCP_SYN | WEFT_TCP_ACK)) == WEFT_TCP_SYN;
}

/*
 * True when this TCP/UDP packet belongs on the kernel path: the kernel tracks its flow with NAT, or — for a
 * packet that opens a flow, not yet tracked — its reply tuple is taken by a NAT'd flow (see the top).
 */
static __always_inline int weft_is_nat_flow(struct __sk_buff *skb, const struct weft_packet *p)
{
	enum weft_ct found;

	if (p->l4proto != IPPROTO_TCP && p->l4proto != IPPROTO_UDP)
		return 0;
	found = weft_ct_lookup(skb, p, &p->src, &p->dst, p->sport, p->dport);
	if (found != WEFT_CT_NONE)
		return found == WEFT_CT_NAT;
	if (!weft_may_open_flow(skb, p))
		return 0;
	return weft_ct_lookup(skb, p, &p->dst, &p->src, p->dport, p->sport) == WEFT_CT_NAT;
}

#endif
