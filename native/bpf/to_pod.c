/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc egress of each pod's host-side veth: what the kernel path delivers to the pod (through the bridge: the host,
 * pods on this node in kernel mode, Services after DNAT, the replies of masqueraded flows, other nodes' pods in
 * kernel mode). Its only job is the pod's ingress policy; bpf_redirect_peer deliveries never pass here (they
 * were checked before the redirect).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weft.h"
#include "lib/maps.h"
#include "lib/packet.h"
#include "lib/policy.h"

SEC("tc")
int weft_to_pod(struct __sk_buff *skb)
{
	const struct weft_config *config = weft_get_config();
	struct weft_packet p;

	if (!config || !(config->flags & WEFT_CONFIG_POLICY) || weft_parse(skb, &p) < 0)
		return weft_verdict(WEFT_TO_POD_PASS, TC_ACT_OK);
	/* A Service connection of a pod of this node, now DNAT'd to this pod: the client's egress, checked again. */
	if (!weft_pending_egress_allowed(skb, &p))
		return weft_verdict(WEFT_POLICY_DROP_EGRESS, TC_ACT_SHOT);
	if (!weft_policy_allows(skb, &p, &p.dst, &p.src, WEFT_INGRESS, WEFT_CHECK_KERNEL_PATH))
		return weft_verdict(WEFT_POLICY_DROP_INGRESS, TC_ACT_SHOT);
	return weft_verdict(WEFT_TO_POD_PASS, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
