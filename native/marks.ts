// How weft recognises kernel state it created (ARCHITECTURE.md: "kernel state is owned, never guessed").
// The route protocol number is weft's own (unassigned in iproute2's rt_protos), so reconcile and cleanup can
// select exactly our routes; 87 is ASCII "W".
export const WEFT_ROUTE_PROTOCOL = 87;

/** The packet mark bit kube-proxy sets on what it masquerades itself (--masquerade-bit 14): weft's masq leaves it. */
export const KUBE_PROXY_MASQ_MARK = 0x4000;

/**
 * weft's own mark bit: an egress NetworkPolicy denied the packet toward outside the cluster network, and the check
 * runs again after DNAT (a Service's address may become an allowed pod's): native/bpf/weft.h,
 * WEFT_CONFIG_DEFER_EGRESS. The masquerade table's forward chain drops what still carries it toward outside the
 * cluster network. Clear of kube-proxy's bits (0x4000 masquerade, 0x8000 drop).
 */
export const WEFT_EGRESS_PENDING_MARK = 0x00040000;
