import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  DEFAULT_IPAM_DATA_DIR,
  DEFAULT_SUBNET_FILE,
  MAX_CONFIG_BYTES,
  isValidInterfaceName,
  parseNetConf,
  resolveNetwork,
  type NetConf,
} from "../../cni/config";
import { ErrorCode } from "../../cni/spec/errors";
import { parseSubnetFile } from "../../cni/subnet-file";
import { catchCniError } from "../support/catch-cni-error";

const minimal = { cniVersion: "1.1.0", name: "weft", type: "weft" };
const conf = (fields: Record<string, unknown>) => JSON.stringify({ ...minimal, ...fields });

const V4_FILE = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";
const DUAL_FILE =
  "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n" +
  "FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64\n" +
  "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";

describe("parseNetConf", () => {
  it("fills the defaults for a minimal config", () => {
    const parsed = parseNetConf(Buffer.from(JSON.stringify(minimal)));
    expect(parsed).toEqual({
      cniVersion: "1.1.0",
      name: "weft",
      type: "weft",
      bridge: "cni0",
      hairpinMode: true,
      isGateway: true,
      isDefaultGateway: false,
      ipMasq: false,
      subnetFile: DEFAULT_SUBNET_FILE,
      ipam: { type: "host-local", dataDir: DEFAULT_IPAM_DATA_DIR },
      runtimeConfig: {},
      args: {},
      requestedIps: [],
      raw: minimal,
    } satisfies NetConf);
    expect(DEFAULT_SUBNET_FILE).toBe("/run/weft/subnet.env");
    expect(DEFAULT_IPAM_DATA_DIR).toBe("/var/lib/cni/networks");
  });

  it("collects requested addresses from args.cni.ips then runtimeConfig.ips, prefix lengths dropped", () => {
    const parsed = parseNetConf(conf({ args: { cni: { ips: ["10.10.0.15", "fd00::15/64"] } }, runtimeConfig: { ips: ["10.10.0.16/24"] } }));
    expect(parsed.requestedIps).toEqual(["10.10.0.15", "fd00::15", "10.10.0.16"]);
    expect(parseNetConf(conf({ args: { other: 1 }, runtimeConfig: { portMappings: [] } })).requestedIps).toEqual([]);
  });

  it.each([
    ["args.cni.ips", { args: { cni: { ips: "10.10.0.15" } } }],
    ["args.cni.ips", { args: { cni: { ips: ["10.10.0.300"] } } }],
    ["args.cni", { args: { cni: ["10.10.0.15"] } }],
    ["runtimeConfig.ips[0]", { runtimeConfig: { ips: [15] } }],
    ["runtimeConfig.ips", { runtimeConfig: { ips: ["10.10.0.15/33"] } }],
  ])("refuses a requested address list that is not one, naming %s (7)", (field, extra) => {
    const error = catchCniError(() => parseNetConf(conf(extra)));
    expect(error.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(error.msg).toContain(`"${field}"`);
  });

  it("reads every field it knows", () => {
    const parsed = parseNetConf(
      conf({
        cniVersion: "1.0.0",
        cniVersions: ["1.0.0", "1.1.0"],
        bridge: "weft0",
        mtu: 1400,
        hairpinMode: false,
        isGateway: false,
        ipMasq: false,
        subnetFile: "/run/flannel/subnet.env",
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: "10.10.0.0/24", rangeStart: "10.10.0.10", rangeEnd: "10.10.0.20", gateway: "10.10.0.1" }], [{ subnet: "fd00::/64" }]],
          routes: [{ dst: "0.0.0.0/0" }, { dst: "fd00:1::/64", gw: "fd00::1" }],
          dataDir: "/var/lib/weft/networks",
        },
        dns: { nameservers: ["10.96.0.10"], search: ["cluster.local"] },
        runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
        args: { cni: { ips: ["10.10.0.15"] } },
      }),
    );
    expect(parsed).toMatchObject({
      cniVersion: "1.0.0",
      cniVersions: ["1.0.0", "1.1.0"],
      bridge: "weft0",
      mtu: 1400,
      hairpinMode: false,
      isGateway: false,
      isDefaultGateway: false,
      subnetFile: "/run/flannel/subnet.env",
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: "10.10.0.0/24", rangeStart: "10.10.0.10", rangeEnd: "10.10.0.20", gateway: "10.10.0.1" }], [{ subnet: "fd00::/64" }]],
        routes: [{ dst: "0.0.0.0/0" }, { dst: "fd00:1::/64", gw: "fd00::1" }],
        dataDir: "/var/lib/weft/networks",
      },
      dns: { nameservers: ["10.96.0.10"], search: ["cluster.local"] },
      runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
      args: { cni: { ips: ["10.10.0.15"] } },
    });
  });

  it("makes a default gateway a gateway, as the bridge plugin does", () => {
    expect(parseNetConf(conf({ isDefaultGateway: true, isGateway: false }))).toMatchObject({ isGateway: true, isDefaultGateway: true });
  });

  it("keeps unknown fields in raw and otherwise ignores them", () => {
    const parsed = parseNetConf(conf({ promiscMode: true, vlan: 7, delegate: { x: 1 } }));
    expect(parsed.raw).toMatchObject({ promiscMode: true, vlan: 7, delegate: { x: 1 } });
  });

  it("reads null as absent", () => {
    const parsed = parseNetConf(conf({ mtu: null, bridge: null, ipam: null, prevResult: null }));
    expect(parsed.mtu).toBeUndefined();
    expect(parsed.bridge).toBe("cni0");
    expect(parsed.prevResult).toBeUndefined();
  });

  it("turns a legacy single ipam subnet into the first range set, as host-local does", () => {
    const parsed = parseNetConf(conf({ ipam: { subnet: "10.1.0.0/24", gateway: "10.1.0.254", ranges: [[{ subnet: "fd00::/64" }]] } }));
    expect(parsed.ipam.ranges).toEqual([[{ subnet: "10.1.0.0/24", gateway: "10.1.0.254" }], [{ subnet: "fd00::/64" }]]);
  });

  it("parses prevResult in the config's version", () => {
    const parsed = parseNetConf(
      conf({
        cniVersion: "0.4.0",
        prevResult: {
          cniVersion: "0.4.0",
          interfaces: [{ name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/proc/1/ns/net" }],
          ips: [{ version: "4", address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 0 }],
        },
      }),
    );
    expect(parsed.prevResult).toEqual({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/proc/1/ns/net" }],
      ips: [{ address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 0 }],
      routes: [],
      dns: {},
    });
  });

  it("accepts a UTF-8 byte order mark and surrounding whitespace", () => {
    expect(parseNetConf(`\uFEFF\n  ${JSON.stringify(minimal)}\n`).name).toBe("weft");
  });

  describe("input that is not a JSON object is a decode error (6)", () => {
    const cases: [string, string | Buffer, string][] = [
      ["empty stdin", "", "stdin is empty"],
      ["whitespace only", " \n\t", "stdin is empty"],
      ["not JSON", "cniVersion=1.0.0", "not JSON"],
      ["truncated JSON", '{"cniVersion": "1.0.0", "name": ', "not JSON"],
      ["an array", "[]", "got an array"],
      ["null", "null", "got null"],
      ["a number", "42", "got a number"],
      ["invalid UTF-8", Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), "not valid UTF-8"],
    ];
    it.each(cases)("%s", (_name, input, text) => {
      const error = catchCniError(() => parseNetConf(input));
      expect(error.code).toBe(ErrorCode.DecodeFailure);
      expect(error.msg).toContain(text);
      expect(error.msg).not.toContain("\n");
    });
  });

  it("refuses 10 MB of garbage as not JSON (6), naming its size, without parsing it", () => {
    const garbage = Buffer.alloc(10 * 1024 * 1024, 0x61);
    const error = catchCniError(() => parseNetConf(garbage));
    expect(error.code).toBe(ErrorCode.DecodeFailure);
    expect(error.msg).toBe(`Cannot decode network config: stdin is not JSON (${garbage.length} bytes, beginning "aaaaaaaaaaaaaaaa")`);
  });

  it("refuses a JSON object over the limit as an invalid config (7), naming the limit", () => {
    for (const prefix of ["", "\ufeff", " \n\t"]) {
      const big = `${prefix}${conf({ padding: "x".repeat(MAX_CONFIG_BYTES) })}`;
      const error = catchCniError(() => parseNetConf(Buffer.from(big)));
      expect(error.code).toBe(ErrorCode.InvalidNetworkConfig);
      expect(error.msg).toContain(`${Buffer.byteLength(big)} bytes, more than the ${MAX_CONFIG_BYTES}-byte limit`);
    }
  });

  it("accepts a config just under the limit", () => {
    const padding = "x".repeat(MAX_CONFIG_BYTES - 200);
    expect(parseNetConf(conf({ padding })).raw.padding).toBe(padding);
  });

  describe("cniVersion", () => {
    it("is required (1)", () => {
      const error = catchCniError(() => parseNetConf(JSON.stringify({ name: "weft", type: "weft" })));
      expect(error.code).toBe(ErrorCode.IncompatibleVersion);
      expect(error.msg).toContain("cniVersion");
    });
    it.each(["0.2.0", "0.1.0", "1.2.0", "2.0.0", "", "latest"])("%j is refused (1) naming the supported versions", (version) => {
      const error = catchCniError(() => parseNetConf(conf({ cniVersion: version })));
      expect(error.code).toBe(ErrorCode.IncompatibleVersion);
      expect(error.msg).toContain("0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
    });
    it("must be a string (7)", () => {
      const error = catchCniError(() => parseNetConf(conf({ cniVersion: 1 })));
      expect(error.code).toBe(ErrorCode.InvalidNetworkConfig);
      expect(error.msg).toContain('"cniVersion"');
    });
  });

  it("gives the exact message for a wrong type", () => {
    expect(catchCniError(() => parseNetConf(conf({ mtu: "abc" }))).msg).toBe(
      'Invalid network config: "mtu" must be an integer between 68 and 65535, got "abc"',
    );
  });

  const badConfigs: [string, Record<string, unknown>, string][] = [
    ["name missing", { name: undefined }, '"name"'],
    ["name starting with '-'", { name: "-weft" }, '"name"'],
    ["name with a space", { name: "my net" }, '"name"'],
    ["name with a slash", { name: "a/b" }, '"name"'],
    ["name not a string", { name: 5 }, '"name"'],
    ["type missing", { type: undefined }, '"type"'],
    ["type empty", { type: "" }, '"type"'],
    ["type not a string", { type: ["weft"] }, '"type"'],
    ["cniVersions not a list", { cniVersions: "1.1.0" }, '"cniVersions"'],
    ["cniVersions with a number", { cniVersions: ["1.1.0", 1] }, '"cniVersions[1]"'],
    ["bridge of 16 bytes", { bridge: "bridge0123456789" }, '"bridge"'],
    ["bridge with multibyte chars over 15 bytes", { bridge: "brückébrückébr" }, '"bridge"'],
    ["bridge with a slash", { bridge: "br/0" }, '"bridge"'],
    ["bridge with a colon", { bridge: "br:0" }, '"bridge"'],
    ["bridge with a space", { bridge: "br 0" }, '"bridge"'],
    ["bridge empty", { bridge: "" }, '"bridge"'],
    ["bridge '..'", { bridge: ".." }, '"bridge"'],
    ["bridge not a string", { bridge: 0 }, '"bridge"'],
    ["mtu below 68", { mtu: 67 }, '"mtu"'],
    ["mtu above 65535", { mtu: 65536 }, '"mtu"'],
    ["mtu fractional", { mtu: 1450.5 }, '"mtu"'],
    ["mtu as a string of digits", { mtu: "1450" }, '"mtu"'],
    ["hairpinMode as a string", { hairpinMode: "yes" }, '"hairpinMode"'],
    ["isGateway as a number", { isGateway: 1 }, '"isGateway"'],
    ["isDefaultGateway as a string", { isDefaultGateway: "true" }, '"isDefaultGateway"'],
    ["ipMasq true (the agent masquerades)", { ipMasq: true }, '"ipMasq" must be false or absent (the weft-agent masquerades'],
    ["ipMasq as a string", { ipMasq: "false" }, '"ipMasq"'],
    ["subnetFile relative", { subnetFile: "run/weft/subnet.env" }, '"subnetFile"'],
    ["subnetFile not a string", { subnetFile: true }, '"subnetFile"'],
    ["ipam not an object", { ipam: "host-local" }, '"ipam"'],
    ["ipam.type another plugin", { ipam: { type: "dhcp" } }, '"ipam.type"'],
    ["ipam.dataDir relative", { ipam: { dataDir: "networks" } }, '"ipam.dataDir"'],
    ["ipam.ranges an object", { ipam: { ranges: { subnet: "10.0.0.0/24" } } }, '"ipam.ranges"'],
    ["ipam.ranges empty", { ipam: { ranges: [] } }, '"ipam.ranges"'],
    ["ipam.ranges with an empty set", { ipam: { ranges: [[]] } }, '"ipam.ranges[0]"'],
    ["ipam.ranges with a range set that is an object", { ipam: { ranges: [{ subnet: "10.0.0.0/24" }] } }, '"ipam.ranges[0]"'],
    ["ipam.ranges with a range that is a string", { ipam: { ranges: [["10.0.0.0/24"]] } }, '"ipam.ranges[0][0]"'],
    ["ipam.ranges without subnet", { ipam: { ranges: [[{ subnet: "10.0.0.0/24" }, { rangeStart: "10.0.1.1" }]] } }, '"ipam.ranges[0][1].subnet"'],
    ["ipam.ranges subnet not a string", { ipam: { ranges: [[{ subnet: 10 }]] } }, '"ipam.ranges[0][0].subnet"'],
    ["ipam.ranges gateway not a string", { ipam: { ranges: [[{ subnet: "10.0.0.0/24", gateway: 1 }]] } }, '"ipam.ranges[0][0].gateway"'],
    ["legacy ipam.subnet not a string", { ipam: { subnet: 10 } }, '"ipam.subnet"'],
    ["ipam.routes not a list", { ipam: { routes: { dst: "0.0.0.0/0" } } }, '"ipam.routes"'],
    ["ipam.routes dst not a CIDR", { ipam: { routes: [{ dst: "default" }] } }, '"ipam.routes[0].dst"'],
    ["ipam.routes gw of the other family", { ipam: { routes: [{ dst: "0.0.0.0/0" }, { dst: "10.0.0.0/8", gw: "fd00::1" }] } }, '"ipam.routes[1].gw"'],
    ["dns not an object", { dns: ["10.96.0.10"] }, '"dns"'],
    ["dns nameserver not an IP", { dns: { nameservers: ["kube-dns"] } }, '"dns.nameservers[0]"'],
    ["runtimeConfig a list", { runtimeConfig: [] }, '"runtimeConfig"'],
    ["args a string", { args: "K8S_POD_NAME=x" }, '"args"'],
    ["prevResult address invalid", { prevResult: { ips: [{ address: "10.0.0.300/24" }] } }, '"prevResult.ips[0].address"'],
    ["prevResult a string", { prevResult: "{}" }, '"prevResult"'],
  ];
  it.each(badConfigs)("refuses %s with code 7 naming the field", (_name, fields, text) => {
    const error = catchCniError(() => parseNetConf(conf(fields)));
    expect(error.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(error.msg.startsWith("Invalid network config: ")).toBe(true);
    expect(error.msg).toContain(text);
  });

  it("accepts interface names up to 15 bytes, any type name, and names the spec allows", () => {
    expect(isValidInterfaceName("abcdefghijklmno")).toBe(true);
    expect(isValidInterfaceName("abcdefghijklmnop")).toBe(false);
    expect(isValidInterfaceName("br\u0000")).toBe(false);
    const parsed = parseNetConf(conf({ name: "k8s-pod-network_1.v2", type: "weft-dev", bridge: "br-weft.10" }));
    expect(parsed).toMatchObject({ name: "k8s-pod-network_1.v2", type: "weft-dev", bridge: "br-weft.10" });
  });
});

describe("parseSubnetFile", () => {
  it("reads an IPv4 file as flannel writes it", () => {
    expect(parseSubnetFile(V4_FILE)).toEqual({
      ipv4: { networks: ["10.244.0.0/16"], subnet: "10.244.1.0/24", gateway: "10.244.1.1" },
      mtu: 1450,
      ipMasq: true,
    });
  });

  it("reads a dual-stack file", () => {
    expect(parseSubnetFile(DUAL_FILE)).toEqual({
      ipv4: { networks: ["10.244.0.0/16"], subnet: "10.244.1.0/24", gateway: "10.244.1.1" },
      ipv6: { networks: ["fd00:10:244::/56"], subnet: "fd00:10:244:1::/64", gateway: "fd00:10:244:1::1" },
      mtu: 1450,
      ipMasq: true,
    });
  });

  it("reads an IPv6-only file", () => {
    const parsed = parseSubnetFile("FLANNEL_IPV6_NETWORK=fd00::/48\nFLANNEL_IPV6_SUBNET=fd00:0:0:5::1/64\nFLANNEL_MTU=1430\n");
    expect(parsed).toEqual({ ipv6: { networks: ["fd00::/48"], subnet: "fd00:0:0:5::/64", gateway: "fd00:0:0:5::1" }, mtu: 1430 });
  });

  it("reads the comma-separated networks newer flannel writes", () => {
    const parsed = parseSubnetFile("FLANNEL_NETWORK=10.244.0.0/16,10.245.0.0/16\nFLANNEL_SUBNET=10.245.3.1/24\nFLANNEL_MTU=1450\n");
    expect(parsed.ipv4).toEqual({ networks: ["10.244.0.0/16", "10.245.0.0/16"], subnet: "10.245.3.0/24", gateway: "10.245.3.1" });
  });

  it("takes the first host as gateway when the file gives the network address", () => {
    const parsed = parseSubnetFile("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.0/24\nFLANNEL_MTU=1450\n");
    expect(parsed.ipv4).toEqual({ networks: ["10.244.0.0/16"], subnet: "10.244.7.0/24", gateway: "10.244.7.1" });
  });

  it("ignores comments, blank lines, CRLF and unknown keys", () => {
    const text = "# written by weft-agent\r\n\r\nFLANNEL_NETWORK=10.244.0.0/16\r\nWEFT_BACKEND=vxlan\r\nFLANNEL_SUBNET=10.244.1.1/24\r\nFLANNEL_MTU=1450\r\n";
    expect(parseSubnetFile(text)).toEqual({ ipv4: { networks: ["10.244.0.0/16"], subnet: "10.244.1.0/24", gateway: "10.244.1.1" }, mtu: 1450 });
  });

  it("reads the eBPF datapath's keys: its directories, and how programs are attached (absent, an older agent's file: tcx)", () => {
    const weft = "WEFT_DATAPATH=ebpf\nWEFT_BPF_DIR=/sys/fs/bpf/weft\nWEFT_ENDPOINTS_DIR=/run/weft/endpoints\n";
    expect(parseSubnetFile(V4_FILE + weft).fastPath).toEqual({ bpfDir: "/sys/fs/bpf/weft", endpointsDir: "/run/weft/endpoints" });
    expect(parseSubnetFile(`${V4_FILE}${weft}WEFT_TC_ATTACH=tcx\n`).fastPath).toEqual({ bpfDir: "/sys/fs/bpf/weft", endpointsDir: "/run/weft/endpoints" });
    expect(parseSubnetFile(`${V4_FILE}${weft}WEFT_TC_ATTACH=clsact\n`).fastPath).toEqual({ bpfDir: "/sys/fs/bpf/weft", endpointsDir: "/run/weft/endpoints", tcAttach: "clsact" });
    // Without WEFT_DATAPATH the pod gets no programs, however they would be attached.
    expect(parseSubnetFile(`${V4_FILE}WEFT_TC_ATTACH=clsact\n`).fastPath).toBeUndefined();
  });

  const malformed: [string, string, string][] = [
    ["a line that is not KEY=VALUE", "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET 10.244.1.1/24\nFLANNEL_MTU=1450\n", 'line 2: expected KEY=VALUE, got "FLANNEL_SUBNET 10.244.1.1/24"'],
    ["a subnet without prefix", "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1\nFLANNEL_MTU=1450\n", "line 2: FLANNEL_SUBNET must be an IPv4 address with a prefix length"],
    ["an IPv6 subnet under the IPv4 key", "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=fd00::1/64\nFLANNEL_MTU=1450\n", "line 2: FLANNEL_SUBNET"],
    ["an IPv4 network under the IPv6 key", "FLANNEL_IPV6_NETWORK=10.0.0.0/8\nFLANNEL_IPV6_SUBNET=fd00::1/64\nFLANNEL_MTU=1450\n", "line 1: FLANNEL_IPV6_NETWORK"],
    ["a bad network in a list", "FLANNEL_NETWORK=10.244.0.0/16,nope\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\n", "line 1: FLANNEL_NETWORK"],
    ["an MTU that is not a number", V4_FILE.replace("FLANNEL_MTU=1450", "FLANNEL_MTU=big"), 'line 3: FLANNEL_MTU must be an integer between 68 and 65535, got "big"'],
    ["an MTU too small", V4_FILE.replace("FLANNEL_MTU=1450", "FLANNEL_MTU=10"), "line 3: FLANNEL_MTU"],
    ["an IPMASQ that is not a boolean", V4_FILE.replace("FLANNEL_IPMASQ=true", "FLANNEL_IPMASQ=yes"), "line 4: FLANNEL_IPMASQ"],
    ["a subnet without its network", "FLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\n", "FLANNEL_SUBNET is set but FLANNEL_NETWORK is missing"],
    ["a network without its subnet", "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_MTU=1450\n", "FLANNEL_NETWORK is set but FLANNEL_SUBNET is missing"],
    ["an IPv6 subnet without its network", V4_FILE + "FLANNEL_IPV6_SUBNET=fd00::1/64\n", "FLANNEL_IPV6_SUBNET is set but FLANNEL_IPV6_NETWORK is missing"],
    ["a subnet outside the network", "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.99.1.1/24\nFLANNEL_MTU=1450\n", "FLANNEL_SUBNET 10.99.1.0/24 is not inside FLANNEL_NETWORK 10.244.0.0/16"],
    ["no subnet at all", "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n", "neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET is set"],
    ["an empty file", "", "neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET is set"],
    ["no MTU", "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n", "FLANNEL_MTU is missing"],
    ["an unknown way to attach programs", V4_FILE + "WEFT_TC_ATTACH=xdp\n", 'line 5: WEFT_TC_ATTACH must be tcx or clsact, got "xdp"'],
  ];
  it.each(malformed)("refuses %s with code 7 naming the file and the line", (_name, text, problem) => {
    const error = catchCniError(() => parseSubnetFile(text, { path: "/run/weft/test.env" }));
    expect(error.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(error.msg).toContain("Invalid subnet file /run/weft/test.env: ");
    expect(error.msg).toContain(problem);
  });
});

describe("resolveNetwork", () => {
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "weft-config-test-"));
  afterAll(() => fs.rmSync(tempDir, { recursive: true, force: true }));

  it("uses the config's own ranges without reading the subnet file", () => {
    const parsed = parseNetConf(conf({ mtu: 1400, ipam: { ranges: [[{ subnet: "10.10.0.0/24" }]], routes: [{ dst: "0.0.0.0/0" }] } }));
    const resolved = resolveNetwork(parsed, () => {
      throw new Error("must not read");
    });
    expect(resolved).toEqual({ rangeSets: [[{ subnet: "10.10.0.0/24" }]], routes: [{ dst: "0.0.0.0/0" }], mtu: 1400, source: "config" });
  });

  it("builds the node range and a route to the cluster network from the subnet file", () => {
    const reads: string[] = [];
    const resolved = resolveNetwork(parseNetConf(conf({})), (file) => {
      reads.push(file);
      return V4_FILE;
    });
    expect(reads).toEqual(["/run/weft/subnet.env"]);
    expect(resolved).toEqual({
      rangeSets: [[{ subnet: "10.244.1.0/24", gateway: "10.244.1.1" }]],
      routes: [{ dst: "10.244.0.0/16", gw: "10.244.1.1" }],
      mtu: 1450,
      source: "subnet-file",
    });
  });

  it("builds one range set per family for dual stack, after the config's own routes, and keeps the config's MTU", () => {
    const parsed = parseNetConf(conf({ mtu: 1400, subnetFile: "/etc/weft/subnet.env", ipam: { routes: [{ dst: "10.96.0.0/12" }] } }));
    const resolved = resolveNetwork(parsed, () => Buffer.from(DUAL_FILE));
    expect(resolved).toEqual({
      rangeSets: [[{ subnet: "10.244.1.0/24", gateway: "10.244.1.1" }], [{ subnet: "fd00:10:244:1::/64", gateway: "fd00:10:244:1::1" }]],
      routes: [{ dst: "10.96.0.0/12" }, { dst: "10.244.0.0/16", gw: "10.244.1.1" }, { dst: "fd00:10:244::/56", gw: "fd00:10:244:1::1" }],
      mtu: 1400,
      source: "subnet-file",
    });
  });

  it("reads the real file by default", () => {
    const file = path.join(tempDir, "subnet.env");
    fs.writeFileSync(file, V4_FILE);
    expect(resolveNetwork(parseNetConf(conf({ subnetFile: file }))).rangeSets).toEqual([[{ subnet: "10.244.1.0/24", gateway: "10.244.1.1" }]]);
  });

  it("asks to try again later (11) when the agent has not written the file, naming it", () => {
    const file = path.join(tempDir, "missing", "subnet.env");
    const error = catchCniError(() => resolveNetwork(parseNetConf(conf({ subnetFile: file }))));
    expect(error.code).toBe(ErrorCode.TryAgainLater);
    expect(error.msg).toContain(file);
    expect((error.cause as NodeJS.ErrnoException).code).toBe("ENOENT");
  });

  it("reports any other read failure as I/O (5)", () => {
    const denied = Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
    const error = catchCniError(() =>
      resolveNetwork(parseNetConf(conf({})), () => {
        throw denied;
      }),
    );
    expect(error.code).toBe(ErrorCode.IoFailure);
    expect(error.msg).toBe("Cannot read subnet file /run/weft/subnet.env: EACCES");
    expect(error.cause).toBe(denied);
  });

  it("reports a malformed file as a config error (7) naming the file and line", () => {
    const error = catchCniError(() => resolveNetwork(parseNetConf(conf({})), () => "FLANNEL_NETWORK=10.244.0.0/16\ngarbage\n"));
    expect(error.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(error.msg).toContain("Invalid subnet file /run/weft/subnet.env: line 2");
  });
});
