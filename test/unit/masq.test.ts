import { describe, expect, it } from "vitest";
import { MasqError } from "../../agent/errors";
import { renderMasqRules } from "../../agent/masq";
import type { NetworkConfig } from "../../agent/model";
import { parseNetworkConfig } from "../../agent/network-config";

const v4 = parseNetworkConfig({ Network: "10.244.0.0/16" });

describe("renderMasqRules", () => {
  it("replaces table inet weft in one script: declare, delete, define", () => {
    const text = renderMasqRules(v4);
    const lines = text.split("\n");
    expect(lines.slice(1, 4)).toEqual(["table inet weft", "delete table inet weft", "table inet weft {"]);
    expect(lines[4]).toMatch(/^\tcomment "weft:[0-9a-f]{16}"$/);
    expect(text.endsWith("}\n")).toBe(true);
  });

  it("renders the IPv4 rules in ip-masq-agent's order", () => {
    const body = renderMasqRules(v4).split("\n").slice(5).join("\n");
    expect(body).toBe(
      [
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        '\t\tmeta mark & 0x00004000 == 0x00004000 return comment "kube-proxy masquerades marked traffic"',
        '\t\tip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return comment "pod to pod"',
        '\t\tip saddr 10.244.0.0/16 ip daddr { 169.254.0.0/16 } return comment "to non-masquerade destinations"',
        '\t\tip saddr 10.244.0.0/16 ip daddr 224.0.0.0/4 return comment "multicast"',
        '\t\tip saddr 10.244.0.0/16 masquerade fully-random comment "pod to outside the cluster"',
        "\t}",
        "",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        '\t\tmeta mark & 0x00040000 == 0x00040000 ip daddr != 10.244.0.0/16 drop comment "egress denied by NetworkPolicy"',
        '\t\tip saddr 10.244.0.0/16 accept comment "from pods"',
        '\t\tip daddr 10.244.0.0/16 accept comment "to pods"',
        "\t}",
        "}",
        "",
      ].join("\n"),
    );
  });

  it("adds the IPv6 family and splits the non-masquerade CIDRs by family", () => {
    const dual = parseNetworkConfig({
      Network: "10.244.0.0/16",
      EnableIPv6: true,
      IPv6Network: "fd00:10:244::/56",
      NonMasqueradeCIDRs: ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8", "fe80::/10"],
    });
    const text = renderMasqRules(dual);
    expect(text).toContain('ip saddr 10.244.0.0/16 ip daddr { 10.0.0.0/8, 192.168.0.0/16 } return');
    expect(text).toContain('ip6 saddr fd00:10:244::/56 ip6 daddr fd00:10:244::/56 return comment "pod to pod"');
    expect(text).toContain('ip6 saddr fd00:10:244::/56 ip6 daddr { fd00::/8, fe80::/10 } return');
    expect(text).toContain('ip6 saddr fd00:10:244::/56 ip6 daddr ff00::/8 return comment "multicast"');
    expect(text).toContain("ip6 saddr fd00:10:244::/56 masquerade fully-random");
    expect(text).toContain("ip6 daddr fd00:10:244::/56 accept");
  });

  it("leaves out the non-masquerade rule when the list is empty (nft refuses an empty set)", () => {
    const text = renderMasqRules(parseNetworkConfig({ Network: "10.244.0.0/16", NonMasqueradeCIDRs: [] }));
    expect(text).not.toContain("{ }");
    expect(text).not.toContain("non-masquerade");
  });

  it("changes the digest when the rules change, and only then", () => {
    const digest = (config: NetworkConfig) => /comment "(weft:[0-9a-f]+)"/.exec(renderMasqRules(config))?.[1];
    expect(digest(v4)).toBe(digest(parseNetworkConfig({ Network: "10.244.0.0/16" })));
    expect(digest(v4)).not.toBe(digest(parseNetworkConfig({ Network: "10.245.0.0/16" })));
  });

  it("refuses to render anything that is not a CIDR (nothing reaches nft unchecked)", () => {
    expect(() => renderMasqRules({ ...v4, nonMasqueradeCidrs: ['10.0.0.0/8 } accept; #'] })).toThrow(MasqError);
    expect(() => renderMasqRules({ ...v4, network: "fd00::/48" })).toThrow(/not an IPv4 network/);
  });
});
