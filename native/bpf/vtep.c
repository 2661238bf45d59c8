/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc on the VTEP, a collect-metadata ("external") VXLAN device.
 *   ingress (from other nodes, decapsulated): a packet for a pod on this node goes straight into its namespace;
 *     the rest (this host, pods on the kernel path, NATed flows) to the kernel. The pod's ingress policy is
 *     checked before the redirect (the kernel path's deliveries are checked by to_pod).
 *   egress (what the kernel routes to the VTEP: host traffic, Service traffic after DNAT, pods on the kernel
 *     path): the tunnel key from the same node map, so the kernel path keeps working over an external device.
 *     Packets from_pod already keyed pass as they are. Kernel mode with NetworkPolicy attaches only this one, for
 *     the deferred egress check of Service connections (WEFT_CONFIG_DEFER_EGRESS).
 */
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weft.h"
#include "lib/conntrack.h"
#include "lib/maps.h"
#include "lib/packet.h"
#include "lib/policy.h"
#include "lib/tunnel.h"

SEC("tc")
int weft_from_tunnel(struct __sk_buff *skb)
{
	const struct weft_config *config = weft_get_config();
	const struct weft_endpoint *endpoint;
	struct weft_packet p;

	if (!config)
		return weft_verdict(WEFT_FROM_TUNNEL_PASS_NOT_READY, TC_ACT_OK);
	if (weft_parse(skb, &p) < 0)
		return weft_verdict(WEFT_FROM_TUNNEL_PASS_NOT_IP, TC_ACT_OK);
	endpoint = bpf_map_lookup_elem(&weft_endpoints, &p.dst);
	if (!endpoint)
		return weft_verdict(WEFT_FROM_TUNNEL_PASS_MISS, TC_ACT_OK);
	if (weft_is_nat_flow(skb, &p))
		return weft_verdict(WEFT_FROM_TUNNEL_PASS_NAT, TC_ACT_OK);
	if (!weft_ingress_allowed(skb, config, &p))
		return weft_verdict(WEFT_POLICY_DROP_INGRESS, TC_ACT_SHOT);
	if (!weft_set_macs(skb, endpoint->mac, endpoint->gateway_mac) || bpf_skb_change_type(skb, PACKET_HOST) < 0)
		return weft_verdict(WEFT_FROM_TUNNEL_PASS_ERROR, TC_ACT_OK);
	weft_count(WEFT_FROM_TUNNEL_LOCAL);
	return bpf_redirect_peer(endpoint->ifindex, 0);
}

SEC("tc")
int weft_to_tunnel(struct __sk_buff *skb)
{
	const struct weft_config *config = weft_get_config();
	const struct weft_node *node;
	struct bpf_tunnel_key have;
	struct weft_lpm_key key;
	struct weft_packet p;

	/* A Service connection of a pod of this node, DNAT'd to another node's pod: the client's egress, checked again. */
	if ((skb->mark & WEFT_MARK_EGRESS_PENDING) && weft_parse(skb, &p) == 0 && !weft_pending_egress_allowed(skb, &p))
		return weft_verdict(WEFT_POLICY_DROP_EGRESS, TC_ACT_SHOT);
	/* Kernel mode: the VTEP is flannel's, with its FDB; the program is here for the check above only. */
	if (config && (config->flags & WEFT_CONFIG_POLICY_ONLY))
		return weft_verdict(WEFT_TO_TUNNEL_KERNEL_MODE, TC_ACT_OK);
	if (bpf_skb_get_tunnel_key(skb, &have, sizeof(have), 0) == 0)
		return weft_verdict(WEFT_TO_TUNNEL_HAD_KEY, TC_ACT_OK);
	/* Not configured yet: nothing can be sent over an external device without a key. */
	if (!config)
		return weft_verdict(WEFT_TO_TUNNEL_DROP_MISS, TC_ACT_SHOT);
	if (weft_parse(skb, &p) < 0)
		return weft_verdict(WEFT_TO_TUNNEL_DROP_NOT_IP, TC_ACT_SHOT);
	key.prefixlen = 128;
	key.addr = p.dst;
	node = bpf_map_lookup_elem(&weft_nodes, &key);
	if (!node)
		return weft_verdict(WEFT_TO_TUNNEL_DROP_MISS, TC_ACT_SHOT);
	if (weft_set_tunnel_key(skb, config, node) < 0)
		return weft_verdict(WEFT_TO_TUNNEL_DROP_ERROR, TC_ACT_SHOT);
	return weft_verdict(WEFT_TO_TUNNEL_KEYED, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
