// The rules kube-proxy's iptables mode writes, for tests that put them in node namespaces by hand
// (iptables-restore --noflush, as kube-proxy applies them; Debian's iptables 1.8, the nf_tables backend).
import { createHash } from "node:crypto";

export const KUBE_PROXY_MASQ_MARK = "0x4000";

/** kube-proxy's chain name hash (pkg/proxy/iptables: portProtoHash): base32(sha256(text)), first 16 characters. */
function chainHash(text: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const byte of createHash("sha256").update(text).digest()) bits += byte.toString(2).padStart(8, "0");
  let out = "";
  for (let i = 0; i + 5 <= bits.length && out.length < 16; i += 5) out += alphabet[Number.parseInt(bits.slice(i, i + 5), 2)];
  return out;
}

export interface ServiceSpec {
  /** "namespace/name:port-name", as kube-proxy names a service port. */
  name: string;
  clusterIp: string;
  port: number;
  nodePort?: number;
  /** "ip:port" of each ready endpoint. */
  endpoints: string[];
}

/**
 * The nat and filter rules kube-proxy (iptables mode, 1.28+) writes for `services`, as iptables-restore input,
 * cut down to TCP ClusterIP and NodePort with externalTrafficPolicy Cluster and no session affinity.
 */
export function kubeProxyRules(clusterCidr: string, services: ServiceSpec[]): string {
  const chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"];
  const rules = [
    `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${KUBE_PROXY_MASQ_MARK}`,
    `-A KUBE-POSTROUTING -m mark ! --mark ${KUBE_PROXY_MASQ_MARK}/${KUBE_PROXY_MASQ_MARK} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${KUBE_PROXY_MASQ_MARK}`,
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
  ];
  for (const svc of services) {
    const svcChain = `KUBE-SVC-${chainHash(`${svc.name}tcp`)}`;
    const extChain = `KUBE-EXT-${chainHash(`${svc.name}tcp`)}`;
    const clusterIp = `-d ${svc.clusterIp}/32 -p tcp -m tcp --dport ${svc.port}`;
    chains.push(svcChain);
    rules.push(`-A KUBE-SERVICES ${clusterIp} -m comment --comment "${svc.name} cluster IP" -j ${svcChain}`);
    if (svc.nodePort !== undefined) {
      chains.push(extChain);
      rules.push(`-A KUBE-NODEPORTS -p tcp -m tcp --dport ${svc.nodePort} -m comment --comment "${svc.name}" -j ${extChain}`);
      rules.push(`-A ${extChain} -m comment --comment "masquerade traffic for ${svc.name} external destinations" -j KUBE-MARK-MASQ`);
      rules.push(`-A ${extChain} -j ${svcChain}`);
    }
    // Traffic to the ClusterIP from outside the pod network (a node's host) is masqueraded.
    rules.push(`-A ${svcChain} ! -s ${clusterCidr} ${clusterIp} -m comment --comment "${svc.name} cluster IP" -j KUBE-MARK-MASQ`);
    svc.endpoints.forEach((endpoint, i) => {
      const sepChain = `KUBE-SEP-${chainHash(`${svc.name}tcp${endpoint}`)}`;
      const left = svc.endpoints.length - i;
      const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : "";
      chains.push(sepChain);
      rules.push(`-A ${svcChain} -m comment --comment "${svc.name} -> ${endpoint}"${pick} -j ${sepChain}`);
      // A backend reaching itself through the Service (hairpin) is masqueraded, or it would answer itself directly.
      rules.push(`-A ${sepChain} -s ${endpoint.split(":")[0]}/32 -m comment --comment "${svc.name}" -j KUBE-MARK-MASQ`);
      rules.push(`-A ${sepChain} -p tcp -m comment --comment "${svc.name}" -m tcp -j DNAT --to-destination ${endpoint}`);
    });
  }
  rules.push(`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`);
  return [
    "*nat",
    ...chains.map((chain) => `:${chain} - [0:0]`),
    ...rules,
    "COMMIT",
    // kube-proxy's forwarding rules: conntrack-INVALID packets are dropped, so a flow that conntrack saw only in
    // part (one direction on the fast path, the other on the kernel path) would show here.
    "*filter",
    ":KUBE-FORWARD - [0:0]",
    `-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD`,
    `-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP`,
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${KUBE_PROXY_MASQ_MARK}/${KUBE_PROXY_MASQ_MARK} -j ACCEPT`,
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    "COMMIT",
    "",
  ].join("\n");
}

