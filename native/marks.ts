// How weft recognises kernel state it created (ARCHITECTURE.md: "kernel state is owned, never guessed").
// The route protocol number is weft's own (unassigned in iproute2's rt_protos), so reconcile and cleanup can
// select exactly our routes; 87 is ASCII "W".
export const WEFT_ROUTE_PROTOCOL = 87;

/** The packet mark bit kube-proxy sets on what it masquerades itself (--masquerade-bit 14): weft's masq leaves it. */
export const KUBE_PROXY_MASQ_MARK = 0x4000;
