import { describe, expect, it } from "vitest";
import { KernelError } from "../../native/errors";
import { CniError, ErrorCode, isCniError, toErrorJson } from "../../cni/spec/errors";
import { convertResult, parsePrevResult, type CniResult } from "../../cni/spec/result";
import {
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  checkCommandAllowed,
  checkSupported,
  compareVersions,
  parseVersion,
  pickVersion,
  versionInfo,
  type CniCommand,
} from "../../cni/spec/version";
import { catchCniError } from "../support/catch-cni-error";

/** A 1.1 result using every field weft knows. */
function fullResult(): CniResult {
  return {
    cniVersion: "1.1.0",
    interfaces: [
      { name: "cni0", mac: "0a:58:0a:f4:01:01", mtu: 1450 },
      { name: "veth1a2b3c4d", mac: "5e:4f:1c:2d:3e:4f" },
      { name: "eth0", mac: "0a:58:0a:f4:01:05", mtu: 1450, sandbox: "/var/run/netns/pod1", socketPath: "/run/x.sock", pciID: "0000:00:1f.6" },
    ],
    ips: [
      { address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 2 },
      { address: "fd00:10:244:1::5/64", gateway: "fd00:10:244:1::1", interface: 2 },
    ],
    routes: [
      { dst: "10.244.0.0/16", gw: "10.244.1.1", mtu: 1400, advmss: 1360, priority: 100, table: 254, scope: 0 },
      { dst: "fd00:10:244::/56", gw: "fd00:10:244:1::1" },
      { dst: "0.0.0.0/0" },
    ],
    dns: { nameservers: ["10.96.0.10"], domain: "cluster.local", search: ["svc.cluster.local"], options: ["ndots:5"] },
  };
}

/** What survives a trip through `version`: the 1.1 additions are dropped below 1.1. */
function expectedAfterTrip(result: CniResult, version: string): CniResult {
  if (version === "1.1.0") return result;
  return {
    ...result,
    interfaces: result.interfaces.map(({ name, mac, sandbox }) => ({
      name,
      ...(mac === undefined ? {} : { mac }),
      ...(sandbox === undefined ? {} : { sandbox }),
    })),
    routes: result.routes.map(({ dst, gw }) => ({ dst, ...(gw === undefined ? {} : { gw }) })),
  };
}

describe("versions", () => {
  it("supports 0.3.0 through 1.1.0 and reports them for VERSION", () => {
    expect(SUPPORTED_VERSIONS).toEqual(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    expect(LATEST_VERSION).toBe("1.1.0");
    expect(versionInfo()).toEqual({ cniVersion: "1.1.0", supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] });
  });

  it("answers VERSION in the version asked when it speaks it, else in the latest", () => {
    expect(versionInfo("0.4.0").cniVersion).toBe("0.4.0");
    expect(versionInfo("0.2.0").cniVersion).toBe("1.1.0");
    expect(versionInfo("nonsense").cniVersion).toBe("1.1.0");
  });

  it("parses only major.minor.patch", () => {
    expect(parseVersion("1.10.2")).toEqual([1, 10, 2]);
    for (const bad of ["", "1", "1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.0.0-rc1", " 1.0.0"]) {
      expect(parseVersion(bad), bad).toBeUndefined();
    }
  });

  it("compares numerically, not as text", () => {
    expect(compareVersions("1.10.0", "1.9.0")).toBeGreaterThan(0);
    expect(compareVersions("0.3.1", "0.4.0")).toBeLessThan(0);
    expect(compareVersions("1.1.0", "1.1.0")).toBe(0);
    expect(catchCniError(() => compareVersions("abc", "1.0.0")).code).toBe(ErrorCode.IncompatibleVersion);
  });

  it("accepts every supported version and refuses others with code 1 naming the supported list", () => {
    for (const version of SUPPORTED_VERSIONS) expect(checkSupported(version)).toBe(version);
    for (const version of ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "", "1.0"]) {
      const error = catchCniError(() => checkSupported(version));
      expect(error.code).toBe(1);
      expect(error.msg).toContain(`"${version}"`);
      expect(error.msg).toContain("0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
    }
  });

  const commandTable: [CniCommand, string, boolean][] = [
    ["ADD", "0.3.0", true],
    ["DEL", "0.3.1", true],
    ["VERSION", "0.3.0", true],
    ["CHECK", "0.3.1", false],
    ["CHECK", "0.4.0", true],
    ["CHECK", "1.1.0", true],
    ["GC", "1.0.0", false],
    ["GC", "1.1.0", true],
    ["STATUS", "0.4.0", false],
    ["STATUS", "1.1.0", true],
  ];
  it.each(commandTable)("%s with a %s config is allowed: %s", (command, version, allowed) => {
    if (allowed) {
      expect(() => checkCommandAllowed(command, version)).not.toThrow();
    } else {
      const error = catchCniError(() => checkCommandAllowed(command, version));
      expect(error.code).toBe(ErrorCode.IncompatibleVersion);
      expect(error.msg).toContain(command);
      expect(error.msg).toContain(version);
    }
  });

  it("negotiates the newest common version of a 1.1 cniVersions list", () => {
    expect(pickVersion(["1.0.0", "1.1.0", "2.0.0"])).toBe("1.1.0");
    expect(pickVersion(["0.3.1", "0.4.0", "bogus"])).toBe("0.4.0");
    expect(pickVersion(["0.2.0", "9.9.9"])).toBeUndefined();
    expect(pickVersion([])).toBeUndefined();
  });
});

describe("errors", () => {
  it("keeps a CniError's code, message and details in the error JSON", () => {
    const error = new CniError(ErrorCode.TryAgainLater, "Cannot read subnet file /run/weft/subnet.env", { details: "agent not ready" });
    expect(toErrorJson(error, "1.0.0")).toEqual({
      cniVersion: "1.0.0",
      code: 11,
      msg: "Cannot read subnet file /run/weft/subnet.env",
      details: "agent not ready",
    });
  });

  it("omits details when there are none", () => {
    expect(toErrorJson(new CniError(7, "Invalid network config: x"), "1.1.0")).toEqual({
      cniVersion: "1.1.0",
      code: 7,
      msg: "Invalid network config: x",
    });
  });

  it("turns unknown errors into 999 with a one-line message", () => {
    const json = toErrorJson(new Error("something\nbroke\r\n  badly"), "0.4.0");
    expect(json).toEqual({ cniVersion: "0.4.0", code: 999, msg: "something broke badly" });
    expect(toErrorJson("a string was thrown", "1.1.0")).toMatchObject({ code: 999, msg: "a string was thrown" });
    expect(toErrorJson(undefined, "1.1.0")).toEqual({ cniVersion: "1.1.0", code: 999, msg: "undefined was thrown" });
  });

  it("gives a kernel error that no step wrapped code 102, with its errno in the message", () => {
    expect(toErrorJson(new KernelError("RTM_NEWLINK ifindex 56", 22), "1.1.0")).toEqual({ cniVersion: "1.1.0", code: 102, msg: "RTM_NEWLINK ifindex 56: EINVAL" });
  });

  it("puts the cause chain in details", () => {
    const io = Object.assign(new Error("open /run/weft/subnet.env"), { code: "EACCES" });
    const error = new CniError(ErrorCode.IoFailure, "Cannot read subnet file", { details: "while resolving the network", cause: io });
    const json = toErrorJson(error, "1.1.0");
    expect(json.code).toBe(5);
    expect(json.details).toBe("while resolving the network; caused by: EACCES: open /run/weft/subnet.env");
    const wrapped = toErrorJson(new Error("outer", { cause: new Error("inner") }), "1.1.0");
    expect(wrapped).toEqual({ cniVersion: "1.1.0", code: 999, msg: "outer", details: "caused by: inner" });
  });

  it("does not repeat a cause that the message already quotes", () => {
    const cause = new SyntaxError("Unexpected end of JSON input");
    const error = new CniError(ErrorCode.DecodeFailure, `Cannot decode network config: ${cause.message}`, { cause });
    expect(toErrorJson(error, "1.1.0")).toEqual({ cniVersion: "1.1.0", code: 6, msg: "Cannot decode network config: Unexpected end of JSON input" });
  });

  it("answers in the latest version when the caller's is unknown or not a version", () => {
    expect(toErrorJson(new Error("x"), undefined).cniVersion).toBe("1.1.0");
    expect(toErrorJson(new Error("x"), "banana").cniVersion).toBe("1.1.0");
    expect(toErrorJson(new Error("x"), "0.2.0").cniVersion).toBe("0.2.0");
  });

  it("makes the message one line even when built from several", () => {
    const error = new CniError(7, "first\nsecond");
    expect(error.msg).toBe("first second");
    expect(error.message).toBe("first second");
    expect(isCniError(error, 7)).toBe(true);
    expect(isCniError(error, 6)).toBe(false);
    expect(isCniError(new Error("x"))).toBe(false);
  });
});

describe("result conversion", () => {
  it("writes 1.1 with every field", () => {
    const json = convertResult(fullResult(), "1.1.0");
    expect(json).toEqual({
      cniVersion: "1.1.0",
      interfaces: fullResult().interfaces,
      ips: fullResult().ips,
      routes: fullResult().routes,
      dns: fullResult().dns,
    });
  });

  it("writes 1.0 without the 1.1 fields and without ips[].version", () => {
    const json = convertResult(fullResult(), "1.0.0") as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(json.cniVersion).toBe("1.0.0");
    expect(json.interfaces[2]).toEqual({ name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/var/run/netns/pod1" });
    expect(json.interfaces[0]).toEqual({ name: "cni0", mac: "0a:58:0a:f4:01:01" });
    expect(json.ips[0]).toEqual({ address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 2 });
    expect(json.routes[0]).toEqual({ dst: "10.244.0.0/16", gw: "10.244.1.1" });
    expect(json.routes[2]).toEqual({ dst: "0.0.0.0/0" });
    expect(json.dns).toEqual(fullResult().dns);
  });

  it.each(["0.3.0", "0.3.1", "0.4.0"])("writes %s with ips[].version and without the 1.1 fields", (version) => {
    const json = convertResult(fullResult(), version) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(json.cniVersion).toBe(version);
    expect(json.ips).toEqual([
      { version: "4", address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 2 },
      { version: "6", address: "fd00:10:244:1::5/64", gateway: "fd00:10:244:1::1", interface: 2 },
    ]);
    expect(json.interfaces[2]).toEqual({ name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/var/run/netns/pod1" });
    expect(json.routes[0]).toEqual({ dst: "10.244.0.0/16", gw: "10.244.1.1" });
  });

  it("always writes interfaces, ips, routes and dns, even when empty", () => {
    const empty: CniResult = { cniVersion: "1.1.0", interfaces: [], ips: [], routes: [], dns: {} };
    expect(convertResult(empty, "0.4.0")).toEqual({ cniVersion: "0.4.0", interfaces: [], ips: [], routes: [], dns: {} });
  });

  it("does not share arrays with the internal result", () => {
    const result = fullResult();
    const json = convertResult(result, "1.1.0") as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    json.dns.nameservers.push("1.1.1.1");
    expect(result.dns.nameservers).toEqual(["10.96.0.10"]);
  });

  it("refuses a version weft does not speak with code 1", () => {
    expect(catchCniError(() => convertResult(fullResult(), "0.2.0")).code).toBe(1);
  });

  it.each([...SUPPORTED_VERSIONS])("round-trips through %s as JSON", (version) => {
    const text = JSON.stringify(convertResult(fullResult(), version));
    const parsed = parsePrevResult(JSON.parse(text), version);
    expect(parsed).toEqual(expectedAfterTrip(fullResult(), version));
  });
});

describe("prevResult parsing", () => {
  it("reads a 0.3.1 result (ips with version)", () => {
    const parsed = parsePrevResult(
      {
        cniVersion: "0.3.1",
        interfaces: [{ name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/proc/42/ns/net" }],
        ips: [{ version: "4", address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 0 }],
        routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }],
        dns: {},
      },
      "0.3.1",
    );
    expect(parsed).toEqual({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/proc/42/ns/net" }],
      ips: [{ address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }],
      dns: {},
    });
  });

  it("reads a 0.4.0 result without the optional parts", () => {
    const parsed = parsePrevResult({ cniVersion: "0.4.0", ips: [{ version: "6", address: "fd00::5/64" }] }, "0.4.0");
    expect(parsed).toEqual({ cniVersion: "1.1.0", interfaces: [], ips: [{ address: "fd00::5/64" }], routes: [], dns: {} });
  });

  it("reads a 1.0.0 result and ignores a stray ips[].version", () => {
    const parsed = parsePrevResult({ ips: [{ version: "6", address: "10.0.0.2/8" }] }, "1.0.0");
    expect(parsed.ips).toEqual([{ address: "10.0.0.2/8" }]);
  });

  it("reads a 1.1.0 result with the new fields and drops unknown ones", () => {
    const parsed = parsePrevResult(
      {
        cniVersion: "1.1.0",
        interfaces: [{ name: "eth0", mtu: 1450, socketPath: "/s", pciID: "0000:01:00.0", metadata: { a: "b" } }],
        ips: [{ address: "10.0.0.2/8" }],
        routes: [{ dst: "10.0.0.0/8", mtu: 1400, advmss: 1360, priority: 5, table: 100, scope: 253, weight: 1 }],
        somethingElse: true,
      },
      "1.1.0",
    );
    expect(parsed.interfaces).toEqual([{ name: "eth0", mtu: 1450, socketPath: "/s", pciID: "0000:01:00.0" }]);
    expect(parsed.routes).toEqual([{ dst: "10.0.0.0/8", mtu: 1400, advmss: 1360, priority: 5, table: 100, scope: 253 }]);
  });

  it("treats empty strings and zero as absent, like the reference types", () => {
    const parsed = parsePrevResult(
      { interfaces: [{ name: "eth0", mac: "", sandbox: "" }], ips: [{ address: "10.0.0.2/8", gateway: "" }], routes: [{ dst: "0.0.0.0/0", gw: "", mtu: 0 }] },
      "1.0.0",
    );
    expect(parsed.interfaces).toEqual([{ name: "eth0" }]);
    expect(parsed.ips).toEqual([{ address: "10.0.0.2/8" }]);
    expect(parsed.routes).toEqual([{ dst: "0.0.0.0/0" }]);
  });

  const invalid: [string, unknown, string, string][] = [
    ["not an object", [], "1.0.0", '"prevResult" must be an object'],
    ["interfaces not an array", { interfaces: {} }, "1.0.0", '"prevResult.interfaces" must be an array'],
    ["interface without name", { interfaces: [{ mac: "0a:58:0a:f4:01:05" }] }, "1.0.0", '"prevResult.interfaces[0].name"'],
    ["bad MAC", { interfaces: [{ name: "eth0", mac: "zz:zz" }] }, "1.0.0", '"prevResult.interfaces[0].mac"'],
    ["address without prefix", { ips: [{ address: "10.0.0.2" }] }, "1.0.0", '"prevResult.ips[0].address"'],
    ["address not an IP", { ips: [{ address: "pod/24" }] }, "1.0.0", '"prevResult.ips[0].address"'],
    ["gateway of the other family", { ips: [{ address: "10.0.0.2/8", gateway: "fd00::1" }] }, "1.0.0", '"prevResult.ips[0].gateway"'],
    ["interface index out of range", { interfaces: [{ name: "eth0" }], ips: [{ address: "10.0.0.2/8", interface: 1 }] }, "1.0.0", '"prevResult.ips[0].interface"'],
    ["interface index without interfaces", { ips: [{ address: "10.0.0.2/8", interface: 0 }] }, "1.0.0", '"prevResult.ips[0].interface"'],
    ["0.4.0 version that contradicts the address", { ips: [{ version: "6", address: "10.0.0.2/8" }] }, "0.4.0", '"prevResult.ips[0].version"'],
    ["route without dst", { routes: [{ gw: "10.0.0.1" }] }, "1.0.0", '"prevResult.routes[0].dst"'],
    ["route gw of the other family", { routes: [{ dst: "0.0.0.0/0", gw: "fd00::1" }] }, "1.0.0", '"prevResult.routes[0].gw"'],
    ["route scope out of range", { routes: [{ dst: "0.0.0.0/0", scope: 256 }] }, "1.1.0", '"prevResult.routes[0].scope"'],
    ["route mtu negative", { routes: [{ dst: "0.0.0.0/0", mtu: -1 }] }, "1.1.0", '"prevResult.routes[0].mtu"'],
    ["nameserver not an IP", { dns: { nameservers: ["dns.example"] } }, "1.0.0", '"prevResult.dns.nameservers[0]"'],
    ["search not strings", { dns: { search: [1] } }, "1.0.0", '"prevResult.dns.search[0]"'],
  ];
  it.each(invalid)("refuses %s with code 7 naming the field", (_name, json, version, field) => {
    const error = catchCniError(() => parsePrevResult(json, version));
    expect(error.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(error.msg).toContain(field);
    expect(error.msg.startsWith("Invalid network config: ")).toBe(true);
  });

  it("refuses a version it does not speak with code 1", () => {
    expect(catchCniError(() => parsePrevResult({ ip4: { ip: "10.0.0.2/8" } }, "0.2.0")).code).toBe(1);
  });
});
