/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing just enough of a packet to decide: the Ethernet header, the IP addresses, and the ports of TCP/UDP/SCTP. */
#ifndef WEFT_PACKET_H
#define WEFT_PACKET_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "../weft.h"

struct weft_packet {
	struct weft_addr src;
	struct weft_addr dst;
	__u16 sport;       /* network order; 0 unless TCP/UDP/SCTP */
	__u16 dport;
	__u8 l4proto;      /* IPPROTO_*, the first header after IP (IPv6 extension headers are not walked) */
	__u8 ipv6;
};

static __always_inline void weft_v4_mapped(struct weft_addr *out, __u32 addr)
{
	__builtin_memset(out->bytes, 0, 10);
	out->bytes[10] = 0xff;
	out->bytes[11] = 0xff;
	__builtin_memcpy(&out->bytes[12], &addr, 4);
}

/* 0 when the frame is IPv4 or IPv6 with a complete header (and ports, for the first fragment of TCP/UDP/SCTP). */
static __always_inline int weft_parse(struct __sk_buff *skb, struct weft_packet *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	void *l4;

	if ((void *)(eth + 1) > end)
		return -1;
	p->sport = 0;
	p->dport = 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return -1;
		weft_v4_mapped(&p->src, ip->saddr);
		weft_v4_mapped(&p->dst, ip->daddr);
		p->l4proto = ip->protocol;
		p->ipv6 = 0;
		/* Later fragments carry no ports. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(p->src.bytes, &ip6->saddr, 16);
		__builtin_memcpy(p->dst.bytes, &ip6->daddr, 16);
		p->l4proto = ip6->nexthdr;
		p->ipv6 = 1;
		l4 = ip6 + 1;
	} else {
		return -1;
	}
	/* SCTP's common header starts with the two ports, as TCP's and UDP's do. */
	if (p->l4proto == IPPROTO_TCP || p->l4proto == IPPROTO_UDP || p->l4proto == 132) {
		__u16 *ports = l4;

		if ((void *)(ports + 2) > end)
			return 0;
		p->sport = ports[0];
		p->dport = ports[1];
	}
	return 0;
}

/* Sets the Ethernet addresses; false when the helper failed. */
static __always_inline int weft_set_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src)
{
	if (bpf_skb_store_bytes(skb, __builtin_offsetof(struct ethhdr, h_dest), dst, ETH_ALEN, 0) < 0)
		return 0;
	return bpf_skb_store_bytes(skb, __builtin_offsetof(struct ethhdr, h_source), src, ETH_ALEN, 0) == 0;
}

#endif
