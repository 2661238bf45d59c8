import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  renderCniConfList, renderSubnetFile, subnetFileContent, writeCniConfList, writeSubnetFile,
} from "../../agent/cniconf";
import { parseNetworkConfig } from "../../agent/network-config";
import { parseNetConf } from "../../cni/config";
import { parseSubnetFile } from "../../cni/subnet-file";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wft-unit-cniconf-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("renderCniConfList", () => {
  it("lists weft then portmap for CNI 1.0.0 and 1.1.0", () => {
    expect(JSON.parse(renderCniConfList({ subnetFile: "/run/weft/subnet.env", ipamDataDir: "/var/lib/weft/ipam" }))).toEqual({
      cniVersion: "1.0.0",
      cniVersions: ["1.0.0", "1.1.0"],
      name: "weft",
      plugins: [
        { type: "weft", bridge: "cni0", isDefaultGateway: true, subnetFile: "/run/weft/subnet.env", ipam: { dataDir: "/var/lib/weft/ipam" } },
        { type: "portmap", capabilities: { portMappings: true }, snat: true },
      ],
    });
  });

  it("gives the plugin a config its own parser accepts, as a runtime would pass it", () => {
    const list = JSON.parse(renderCniConfList({ bridge: "br-pods" })) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    const conf = parseNetConf(JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] }));
    expect(conf).toMatchObject({ type: "weft", bridge: "br-pods", isDefaultGateway: true, isGateway: true, subnetFile: "/run/weft/subnet.env" });
    expect(conf.ipam).toEqual({ type: "host-local", dataDir: "/var/lib/cni/networks" });
  });
});

describe("subnet file", () => {
  it("writes flannel's format, the subnet as its gateway address", () => {
    const config = parseNetworkConfig({ Network: "10.244.0.0/16" });
    expect(renderSubnetFile(subnetFileContent(config, { podCidrs: ["10.244.3.0/24"] }, 1450))).toBe(
      "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    );
  });

  it("round-trips through the plugin's parser, dual-stack included", () => {
    const config = parseNetworkConfig({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56" });
    const text = renderSubnetFile(subnetFileContent(config, { podCidrs: ["10.244.3.0/24", "fd00:10:244:3::/64"] }, 1450));
    expect(parseSubnetFile(text)).toEqual({
      ipv4: { networks: ["10.244.0.0/16"], subnet: "10.244.3.0/24", gateway: "10.244.3.1" },
      ipv6: { networks: ["fd00:10:244::/56"], subnet: "fd00:10:244:3::/64", gateway: "fd00:10:244:3::1" },
      mtu: 1450,
      ipMasq: true,
    });
  });

  it("leaves out an IPv6 pod CIDR when the network config has no IPv6 network", () => {
    const config = parseNetworkConfig({ Network: "10.244.0.0/16" });
    const text = renderSubnetFile(subnetFileContent(config, { podCidrs: ["10.244.3.0/24", "fd00:10:244:3::/64"] }, 1400));
    expect(text).not.toContain("IPV6");
    expect(parseSubnetFile(text).ipv6).toBeUndefined();
  });
});

describe("writing", () => {
  it("writes only when the content changes, through a temp file that does not stay behind", () => {
    const file = path.join(dir, "net.d", "10-weft.conflist");
    expect(writeCniConfList({ path: file })).toBe(true);
    const first = fs.statSync(file);
    expect(fs.readFileSync(file, "utf8")).toBe(renderCniConfList());
    expect(writeCniConfList({ path: file })).toBe(false);
    expect(fs.statSync(file).ino).toBe(first.ino);
    expect(writeCniConfList({ path: file, bridge: "cni1" })).toBe(true);
    expect(fs.statSync(file).ino).not.toBe(first.ino); // renamed over, not rewritten in place
    expect(JSON.parse(fs.readFileSync(file, "utf8")).plugins[0].bridge).toBe("cni1");
    expect(fs.readdirSync(path.dirname(file))).toEqual(["10-weft.conflist"]);
    expect((first.mode & 0o777).toString(8)).toBe("644");
  });

  it("writes the subnet file the same way", () => {
    const file = path.join(dir, "run", "subnet.env");
    const content = { network: "10.244.0.0/16", subnet: "10.244.3.0/24", mtu: 1450 };
    expect(writeSubnetFile(content, { path: file })).toBe(true);
    expect(writeSubnetFile(content, { path: file })).toBe(false);
    expect(writeSubnetFile({ ...content, mtu: 1400 }, { path: file })).toBe(true);
    expect(parseSubnetFile(fs.readFileSync(file, "utf8")).mtu).toBe(1400);
  });
});
