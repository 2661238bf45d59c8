/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc ingress of each pod's host-side veth: what the pod sends. A destination pod on this node gets the packet
 * straight into its namespace (bpf_redirect_peer); a destination in another node's pod CIDR is tunnelled to that
 * node through the VTEP (tunnel key + redirect). Anything else — Services' virtual IPs, the host, the outside
 * world, flows the kernel NATs, packets too big for the tunnel — goes on to the kernel path, unchanged.
 * NetworkPolicy: the pod's egress is checked first, whatever the path; a destination pod's ingress before the
 * redirect into it. In kernel mode (WEFT_CONFIG_POLICY_ONLY) only the egress check runs here.
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
int weft_from_pod(struct __sk_buff *skb)
{
	const struct weft_config *config = weft_get_config();
	const struct weft_endpoint *endpoint;
	const struct weft_node *node;
	struct weft_lpm_key key;
	struct weft_packet p;
	__u32 mtu = 0;

	if (!config)
		return weft_verdict(WEFT_FROM_POD_PASS_NOT_READY, TC_ACT_OK);
	if (weft_parse(skb, &p) < 0)
		return weft_verdict(WEFT_FROM_POD_PASS_NOT_IP, TC_ACT_OK);
	switch (weft_egress_check(skb, config, &p)) {
	case WEFT_EGRESS_DENIED:
		return weft_verdict(WEFT_POLICY_DROP_EGRESS, TC_ACT_SHOT);
	case WEFT_EGRESS_DEFERRED:
		return weft_verdict(WEFT_POLICY_EGRESS_DEFERRED, TC_ACT_OK);
	default:
		break;
	}
	if (config->flags & WEFT_CONFIG_POLICY_ONLY)
		return weft_verdict(WEFT_FROM_POD_PASS_KERNEL_MODE, TC_ACT_OK);

	endpoint = bpf_map_lookup_elem(&weft_endpoints, &p.dst);
	if (endpoint) {
		if (weft_is_nat_flow(skb, &p))
			return weft_verdict(WEFT_FROM_POD_PASS_NAT, TC_ACT_OK);
		if (!weft_ingress_allowed(skb, config, &p))
			return weft_verdict(WEFT_POLICY_DROP_INGRESS, TC_ACT_SHOT);
		/* The pod sees what the bridge would deliver: from the gateway, to itself, as a packet for this host. */
		if (!weft_set_macs(skb, endpoint->mac, endpoint->gateway_mac) || bpf_skb_change_type(skb, PACKET_HOST) < 0)
			return weft_verdict(WEFT_FROM_POD_PASS_ERROR, TC_ACT_OK);
		weft_count(WEFT_FROM_POD_LOCAL);
		return bpf_redirect_peer(endpoint->ifindex, 0);
	}

	key.prefixlen = 128;
	key.addr = p.dst;
	node = bpf_map_lookup_elem(&weft_nodes, &key);
	if (!node)
		return weft_verdict(WEFT_FROM_POD_PASS_MISS, TC_ACT_OK);
	if (weft_is_nat_flow(skb, &p))
		return weft_verdict(WEFT_FROM_POD_PASS_NAT, TC_ACT_OK);
	/*
	 * The redirect skips the kernel's forwarding MTU check: what would not fit the VTEP goes the kernel's way.
	 * BPF_MTU_CHK_SEGS: without it the helper passes every GSO packet (a TCP pod at MTU 1500 sends them), whose
	 * segments the VTEP then encapsulates past its MTU and the underlay fragments (e2e overlay-ebpf-modes, MTU).
	 */
	if (bpf_check_mtu(skb, config->vtep_ifindex, &mtu, 0, BPF_MTU_CHK_SEGS) != 0)
		return weft_verdict(WEFT_FROM_POD_PASS_MTU, TC_ACT_OK);
	/* flannel's wire: the inner frame goes from our VTEP's MAC to the remote VTEP's. */
	if (!weft_set_macs(skb, node->vtep_mac, config->vtep_mac) || weft_set_tunnel_key(skb, config, node) < 0)
		return weft_verdict(WEFT_FROM_POD_PASS_ERROR, TC_ACT_OK);
	weft_count(WEFT_FROM_POD_REMOTE);
	return bpf_redirect(config->vtep_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
