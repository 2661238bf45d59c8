/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NetworkPolicy, checked where a packet leaves a pod (its egress: from_pod) and where it is about to reach one (its
 * ingress: before bpf_redirect_peer in from_pod and from_tunnel, and in to_pod for what the kernel path delivers).
 * A pod no policy selects costs one hash lookup. For a selected pod:
 *   1. a connection this check already allowed under the pod's current rule set passes (weft_policy_ct);
 *   2. a reply to a connection the pod's other direction allowed, under that direction's current rule set, passes
 *      (the same map, the tuple inverted): a rule change takes back what it no longer allows, established or not;
 *   3. traffic between the pod and its own node passes (kubelet probes), as do IPv6 neighbour discovery messages;
 *   4. on the kernel path, a reply of a connection the pod opened passes, as the kernel's conntrack has it (the
 *      replies of a Service connection arrive from the virtual IP, a tuple this map never saw);
 *   5. else the peer's longest prefix in the pod's rule set gives the ports it may use, and the connection is
 *      recorded when they include this one.
 * A selected pod's connections are recorded in both directions, also the one no policy isolates (only the packets
 * that open a connection there), so that the replies of what it opens pass its isolated direction.
 */
#ifndef WEFT_POLICY_H
#define WEFT_POLICY_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "../weft.h"
#include "conntrack.h"
#include "maps.h"
#include "packet.h"

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif
#define WEFT_ICMPV6 58
#define WEFT_ND_FIRST 133 /* router solicitation … */
#define WEFT_ND_LAST 137  /* … redirect */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEFT_MAX_POLICY_ENDPOINTS);
	__type(key, struct weft_addr);
	__type(value, struct weft_policy_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_policy_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEFT_MAX_POLICY_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_policy_key);
	__type(value, struct weft_policy_ports);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEFT_MAX_POLICY_CONNECTIONS);
	__type(key, struct weft_ct_key);
	__type(value, struct weft_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_policy_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEFT_MAX_HOST_ADDRS);
	__type(key, struct weft_addr);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_policy_host SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 2 * WEFT_MAX_POLICY_ENDPOINTS);
	__type(key, struct weft_stats_key);
	__type(value, struct weft_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_policy_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEFT_MAX_CLUSTER_CIDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_lpm_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_cluster SEC(".maps");

/* How a check may treat the packet. */
#define WEFT_CHECK_KERNEL_PATH 1 /* it came through the kernel path: conntrack knows its flow (step 4) */
#define WEFT_CHECK_MAY_DEFER 2   /* a denial is not final (it is checked again after DNAT): not counted */

static __always_inline int weft_in_cluster(const struct weft_addr *addr)
{
	struct weft_lpm_key key = { .prefixlen = 128, .addr = *addr };

	return bpf_map_lookup_elem(&weft_cluster, &key) != 0;
}

static __always_inline void weft_policy_count(const struct weft_addr *pod, __u32 direction, int allowed)
{
	struct weft_stats_key key = { .addr = *pod, .direction = direction };
	struct weft_stats *stats = bpf_map_lookup_elem(&weft_policy_stats, &key);

	if (!stats) {
		struct weft_stats zero = {};

		bpf_map_update_elem(&weft_policy_stats, &key, &zero, BPF_NOEXIST);
		stats = bpf_map_lookup_elem(&weft_policy_stats, &key);
		if (!stats)
			return;
	}
	if (allowed)
		stats->allowed += 1;
	else
		stats->denied += 1;
}

/* True when the ranges allow this protocol and destination port (host order; 0 for protocols without ports). */
static __always_inline int weft_ports_allow(const struct weft_policy_ports *ports, __u8 protocol, __u16 port)
{
	__u32 count = ports->count;
	int has_ports = protocol == IPPROTO_TCP || protocol == IPPROTO_UDP || protocol == IPPROTO_SCTP;

#pragma unroll
	for (int i = 0; i < WEFT_POLICY_MAX_PORTS; i++) {
		const struct weft_port_range *range = &ports->ranges[i];

		if (i >= count)
			break;
		if (range->protocol == WEFT_PROTO_ANY)
			return 1;
		if (has_ports && range->protocol == protocol && port >= range->first && port <= range->last)
			return 1;
	}
	return 0;
}

/* IPv6 neighbour discovery between a pod and its gateway never depends on policy. */
static __always_inline int weft_is_neighbour_discovery(struct __sk_buff *skb, const struct weft_packet *p)
{
	__u8 type;

	if (!p->ipv6 || p->l4proto != WEFT_ICMPV6)
		return 0;
	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + sizeof(struct ipv6hdr), &type, 1) < 0)
		return 0;
	return type >= WEFT_ND_FIRST && type <= WEFT_ND_LAST;
}

/* Records the connection as allowed by `set` for this direction's check; false when the map refused it. */
static __always_inline int weft_ct_record(const struct weft_ct_key *key, __u32 set)
{
	const struct weft_ct_entry *have = bpf_map_lookup_elem(&weft_policy_ct, key);
	struct weft_ct_entry entry = { .set = set };

	if (have && have->set == set)
		return 1;
	return bpf_map_update_elem(&weft_policy_ct, key, &entry, BPF_ANY) == 0;
}

/*
 * True when `pod` (a local address) may receive this packet from `peer` (direction WEFT_INGRESS) or send it to
 * `peer` (WEFT_EGRESS). The caller checks WEFT_CONFIG_POLICY first.
 */
static __always_inline int weft_policy_allows(struct __sk_buff *skb, const struct weft_packet *p, const struct weft_addr *pod,
					      const struct weft_addr *peer, __u32 direction, __u32 how)
{
	const struct weft_policy_endpoint *endpoint = bpf_map_lookup_elem(&weft_policy_endpoints, pod);
	const struct weft_policy_ports *ports;
	const struct weft_ct_entry *seen;
	struct weft_ct_key key = {}, reply = {};
	struct weft_policy_key rule = {};
	__u32 set, other;

	if (!endpoint)
		return 1;
	set = direction == WEFT_INGRESS ? endpoint->ingress_set : endpoint->egress_set;
	other = direction == WEFT_INGRESS ? endpoint->egress_set : endpoint->ingress_set;
	key.src = p->src;
	key.dst = p->dst;
	key.sport = p->sport;
	key.dport = p->dport;
	key.protocol = p->l4proto;
	key.direction = direction;
	reply.src = p->dst;
	reply.dst = p->src;
	reply.sport = p->dport;
	reply.dport = p->sport;
	reply.protocol = p->l4proto;
	reply.direction = direction == WEFT_INGRESS ? WEFT_EGRESS : WEFT_INGRESS;
	if (set == 0) {
		/*
		 * Not isolated this way: remember a connection this packet opens (a TCP SYN, a UDP packet that answers
		 * nothing the other way), for its replies' check, if the other way is isolated. Not the packets of a
		 * connection the peer opened: recorded here, they would pass the peer's later packets as "replies" once
		 * the pod's rules no longer allow the peer.
		 */
		if (other != 0 && weft_may_open_flow(skb, p) && !bpf_map_lookup_elem(&weft_policy_ct, &reply) && !weft_ct_record(&key, 0))
			weft_count(WEFT_POLICY_CT_FULL);
		return 1;
	}
	seen = bpf_map_lookup_elem(&weft_policy_ct, &key);
	if (seen && seen->set == set)
		goto allowed;
	/* A reply of a connection the other direction allowed, under the rules it has now (else checked afresh). */
	seen = bpf_map_lookup_elem(&weft_policy_ct, &reply);
	if (seen && seen->set == other)
		goto allowed;
	if (bpf_map_lookup_elem(&weft_policy_host, peer) || weft_is_neighbour_discovery(skb, p))
		goto allowed;
	if ((how & WEFT_CHECK_KERNEL_PATH) && direction == WEFT_INGRESS && weft_ct_is_reply(skb, p)) {
		weft_count(WEFT_POLICY_KERNEL_REPLY);
		goto allowed;
	}
	rule.prefixlen = 32 + 128;
	rule.set = set;
	rule.addr = *peer;
	ports = bpf_map_lookup_elem(&weft_policy, &rule);
	if (!ports || !weft_ports_allow(ports, p->l4proto, bpf_ntohs(p->dport))) {
		if (!(how & WEFT_CHECK_MAY_DEFER))
			weft_policy_count(pod, direction, 0);
		return 0;
	}
	if (!weft_ct_record(&key, set))
		weft_count(WEFT_POLICY_CT_FULL);
allowed:
	weft_policy_count(pod, direction, 1);
	return 1;
}

/* The ingress check of a local pod before a redirect into it (fast path), when the node has policy at all. */
static __always_inline int weft_ingress_allowed(struct __sk_buff *skb, const struct weft_config *config, const struct weft_packet *p)
{
	return !(config->flags & WEFT_CONFIG_POLICY) || weft_policy_allows(skb, p, &p->dst, &p->src, WEFT_INGRESS, 0);
}

enum weft_egress { WEFT_EGRESS_ALLOWED, WEFT_EGRESS_DENIED, WEFT_EGRESS_DEFERRED };

/*
 * The egress check of the pod that sent the packet (from_pod). A denial toward outside the cluster network is
 * deferred while the agent's nftables rule backs it (WEFT_CONFIG_DEFER_EGRESS): the packet is marked and takes the
 * kernel path, where DNAT may turn a Service's address into an allowed pod's (weft_pending_egress_allowed).
 */
static __always_inline enum weft_egress weft_egress_check(struct __sk_buff *skb, const struct weft_config *config, const struct weft_packet *p)
{
	__u32 how = 0;

	if (!(config->flags & WEFT_CONFIG_POLICY))
		return WEFT_EGRESS_ALLOWED;
	if ((config->flags & WEFT_CONFIG_DEFER_EGRESS) && !weft_in_cluster(&p->dst))
		how |= WEFT_CHECK_MAY_DEFER;
	if (weft_policy_allows(skb, p, &p->src, &p->dst, WEFT_EGRESS, how))
		return WEFT_EGRESS_ALLOWED;
	if (how & WEFT_CHECK_MAY_DEFER) {
		skb->mark |= WEFT_MARK_EGRESS_PENDING;
		return WEFT_EGRESS_DEFERRED;
	}
	return WEFT_EGRESS_DENIED;
}

/* A deferred egress check, after DNAT (to_pod, to_tunnel): the mark is cleared either way. */
static __always_inline int weft_pending_egress_allowed(struct __sk_buff *skb, const struct weft_packet *p)
{
	if (!(skb->mark & WEFT_MARK_EGRESS_PENDING))
		return 1;
	skb->mark &= ~WEFT_MARK_EGRESS_PENDING;
	return weft_policy_allows(skb, p, &p->src, &p->dst, WEFT_EGRESS, WEFT_CHECK_KERNEL_PATH);
}

#endif
