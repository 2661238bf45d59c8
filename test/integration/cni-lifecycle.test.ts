// The compiled plugin through its whole life cycle, in every spec version, against the real kernel.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { linkNames } from "../support/netns";
import { SPEC_VERSIONS, CniNode } from "../support/weft-fixture";
import { startEchoServer, tcpEcho } from "../support/traffic";

let node: CniNode;
beforeAll(() => {
  node = new CniNode("life");
});
afterAll(() => node?.close());

describe.each(SPEC_VERSIONS)("cniVersion %s", (version) => {
  it("ADD, CHECK, DEL, DEL: result in the version's shape, then nothing left", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const conf = node.conf({}, version);
    const result = node.add({ containerId, netns: pod.path }, conf);

    expect(result.cniVersion).toBe(version);
    expect(result.interfaces.map((i: { name: string }) => i.name)).toEqual(["cni0", expect.stringMatching(/^veth[0-9a-f]{8}$/), "eth0"]);
    expect(result.interfaces[2].sandbox).toBe(pod.path);
    const bridgeMac = JSON.parse(node.node.exec(["ip", "-j", "link", "show", "cni0"]))[0].address;
    expect(result.interfaces[0].mac).toBe(bridgeMac);
    expect(bridgeMac).not.toBe("00:00:00:00:00:00");
    expect(result.ips).toHaveLength(1);
    expect(result.ips[0]).toMatchObject({ address: expect.stringMatching(/^10\.240\.0\.\d+\/24$/), gateway: "10.240.0.1", interface: 2 });
    if (version.startsWith("0.")) expect(result.ips[0].version).toBe("4");
    else expect(result.ips[0]).not.toHaveProperty("version");

    const podAddress = JSON.parse(pod.exec(["ip", "-j", "addr", "show", "eth0"]))[0];
    expect(podAddress.address).toBe(result.interfaces[2].mac);
    expect(podAddress.addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`)).toContain(result.ips[0].address);
    expect(node.hostVeths()).toContain(result.interfaces[1].name);
    expect(node.reservations()).toContain(result.ips[0].address.split("/")[0]);

    if (version !== "0.3.0" && version !== "0.3.1") {
      const check = node.run("CHECK", { containerId, netns: pod.path }, { ...conf, prevResult: result });
      expect(check.stdout + check.stderr).toBe("");
      expect(check.code).toBe(0);
    }

    for (let i = 0; i < 2; i++) {
      const del = node.run("DEL", { containerId, netns: pod.path }, conf);
      expect(del.code, del.stdout).toBe(0);
    }
    expect(node.reservations()).toEqual([]);
    expect(node.hostVeths()).not.toContain(result.interfaces[1].name);
    expect(pod.exec(["ip", "-o", "link"])).not.toContain("eth0");
  });
});

describe("pods on one bridge", () => {
  it("reach each other and the gateway over TCP", async () => {
    const [a, b] = [node.pod("a"), node.pod("b")];
    const ids = [node.containerId(), node.containerId()];
    const ra = node.add({ containerId: ids[0]!, netns: a.path });
    const rb = node.add({ containerId: ids[1]!, netns: b.path });
    const ipA = ra.ips[0].address.split("/")[0];
    const ipB = rb.ips[0].address.split("/")[0];
    const serverB = await startEchoServer(b.name, 7001);
    const serverNode = await startEchoServer(node.node.name, 7002);
    try {
      const toB = tcpEcho(a.name, ipB, 7001);
      expect(toB, toB.error).toMatchObject({ ok: true, source: ipA });
      const toGateway = tcpEcho(a.name, "10.240.0.1", 7002);
      expect(toGateway, toGateway.error).toMatchObject({ ok: true, source: ipA });
    } finally {
      serverB.stop();
      serverNode.stop();
      node.run("DEL", { containerId: ids[0]!, netns: a.path }, node.conf());
      node.run("DEL", { containerId: ids[1]!, netns: b.path }, node.conf());
    }
  });

  it("sets the bridge up with the gateway address, hairpin on the port, forwarding on", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const result = node.add({ containerId, netns: pod.path });
    try {
      const bridge = JSON.parse(node.node.exec(["ip", "-j", "addr", "show", "cni0"]))[0];
      expect(bridge.flags).toContain("UP");
      expect(bridge.addr_info.map((a: { local: string }) => a.local)).toContain("10.240.0.1");
      const port = JSON.parse(node.node.exec(["bridge", "-j", "-d", "link", "show", "dev", result.interfaces[1].name]))[0];
      expect(port.hairpin).toBe(true);
      expect(node.node.exec(["cat", "/proc/sys/net/ipv4/ip_forward"]).trim()).toBe("1");
      expect(pod.exec(["ip", "route", "show"])).toContain("10.240.0.0/24 dev eth0");
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, node.conf());
    }
  });

  it("keeps the bridge's MAC when a port with a lower MAC joins (the pods' gateway entry stays valid)", () => {
    const conf = node.conf({ bridge: "cnimac", ipam: { ranges: [[{ subnet: "10.249.0.0/24" }]], dataDir: node.dataDir } });
    const pod = node.pod();
    const containerId = node.containerId();
    node.add({ containerId, netns: pod.path }, conf);
    try {
      const macOf = (name: string): string => JSON.parse(node.node.exec(["ip", "-j", "link", "show", name]))[0].address;
      const before = macOf("cnimac");
      // An unpinned bridge would take this port's MAC, the lowest unicast one.
      node.node.exec(["ip", "link", "add", "lowmac0", "address", "02:00:00:00:00:01", "type", "veth", "peer", "name", "lowmac1"]);
      try {
        node.node.exec(["ip", "link", "set", "lowmac0", "master", "cnimac", "up"]);
        expect(macOf("cnimac")).toBe(before);
      } finally {
        node.node.exec(["ip", "link", "del", "lowmac0"]);
      }
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, conf);
      node.node.exec(["ip", "link", "del", "cnimac"]);
    }
  });
});

describe("ADD details", () => {
  it("fails with code 101 when the interface already exists, and leaves the first attachment intact", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const first = node.add({ containerId, netns: pod.path });
    const [nodeLinksBefore, podLinksBefore] = [linkNames(node.node), linkNames(pod)];
    const second = node.run("ADD", { containerId: node.containerId(), netns: pod.path }, node.conf());
    expect(second.code).toBe(1);
    expect(second.json).toMatchObject({ code: 101, msg: expect.stringContaining("eth0") });
    expect(node.reservations()).toEqual([first.ips[0].address.split("/")[0]]);
    expect(linkNames(node.node)).toEqual(nodeLinksBefore);
    expect(linkNames(pod)).toEqual(podLinksBefore);
    node.run("DEL", { containerId, netns: pod.path }, node.conf());
    expect(node.reservations()).toEqual([]);
  });

  it("gives a dual-stack pod one address per family, with a route per family", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const conf = node.conf({
      isDefaultGateway: true,
      ipam: { ranges: [[{ subnet: "10.241.0.0/24" }], [{ subnet: "fd00:241::/64" }]], dataDir: node.dataDir },
      bridge: "cni6",
    });
    const result = node.add({ containerId, netns: pod.path }, conf);
    try {
      expect(result.ips.map((ip: { address: string }) => ip.address)).toEqual([
        expect.stringMatching(/^10\.241\.0\.\d+\/24$/),
        expect.stringMatching(/^fd00:241::[0-9a-f]+\/64$/),
      ]);
      expect(result.ips.map((ip: { gateway: string }) => ip.gateway)).toEqual(["10.241.0.1", "fd00:241::1"]);
      expect(pod.exec(["ip", "-4", "route", "show", "default"])).toContain("via 10.241.0.1");
      expect(pod.exec(["ip", "-6", "route", "show", "default"])).toContain("via fd00:241::1");
      const check = node.run("CHECK", { containerId, netns: pod.path }, { ...conf, prevResult: result });
      expect(check.code, check.stdout).toBe(0);
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, conf);
    }
  });

  it("applies the config's mtu, hairpinMode false, isGateway false and ipam.routes; turns on arp_notify", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const conf = node.conf({
      bridge: "cniopt",
      mtu: 1300,
      hairpinMode: false,
      isGateway: false,
      ipam: { ranges: [[{ subnet: "10.245.0.0/24" }]], routes: [{ dst: "192.0.2.0/24" }, { dst: "198.51.100.0/24", gw: "10.245.0.9" }], dataDir: node.dataDir },
    });
    const result = node.add({ containerId, netns: pod.path }, conf);
    try {
      const hostVeth = result.interfaces[1].name;
      const mtuOf = (ns: typeof node.node, dev: string) => (JSON.parse(ns.exec(["ip", "-j", "link", "show", dev])) as { mtu: number }[])[0]!.mtu;
      expect([mtuOf(node.node, "cniopt"), mtuOf(node.node, hostVeth), mtuOf(pod, "eth0")]).toEqual([1300, 1300, 1300]);
      expect(result.interfaces.map((i: { mtu?: number }) => i.mtu)).toEqual([1300, 1300, 1300]);
      const port = JSON.parse(node.node.exec(["bridge", "-j", "-d", "link", "show", "dev", hostVeth]))[0];
      expect(port.hairpin).toBe(false);
      // Not the gateway: the bridge holds no address.
      expect(node.node.exec(["ip", "-o", "addr", "show", "dev", "cniopt", "scope", "global"])).toBe("");
      expect(pod.exec(["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]).trim()).toBe("1");
      // ipam.routes: a route without gw goes via the range's gateway, one with gw via that.
      expect(pod.exec(["ip", "route", "show", "192.0.2.0/24"])).toContain("via 10.245.0.1 dev eth0 proto 87");
      expect(pod.exec(["ip", "route", "show", "198.51.100.0/24"])).toContain("via 10.245.0.9 dev eth0 proto 87");
      expect(result.routes).toEqual([{ dst: "192.0.2.0/24", gw: "10.245.0.1" }, { dst: "198.51.100.0/24", gw: "10.245.0.9" }]);
      const check = node.run("CHECK", { containerId, netns: pod.path }, { ...conf, prevResult: result });
      expect(check.code, check.stdout).toBe(0);
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, conf);
    }
  });

  it("gives a dual-stack bridge a gateway address per family and turns on forwarding for both", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const conf = node.conf({ bridge: "cnids", ipam: { ranges: [[{ subnet: "10.246.0.0/24" }], [{ subnet: "fd00:246::/64" }]], dataDir: node.dataDir } });
    node.add({ containerId, netns: pod.path }, conf);
    try {
      const addresses = node.node.exec(["ip", "-o", "addr", "show", "dev", "cnids"]);
      expect(addresses).toContain("inet 10.246.0.1/24");
      expect(addresses).toContain("inet6 fd00:246::1/64");
      expect(node.node.exec(["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"]).split("\n").slice(0, 2)).toEqual(["1", "1"]);
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, conf);
    }
  });

  it("chained after another plugin: keeps prevResult's interfaces, IPs, routes and DNS, and numbers its own after them", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const prevResult = {
      cniVersion: "1.1.0",
      interfaces: [{ name: "dummy0", mac: "02:00:00:00:00:aa", sandbox: pod.path }],
      ips: [{ address: "192.0.2.10/24", interface: 0 }],
      routes: [{ dst: "203.0.113.0/24", gw: "192.0.2.1" }],
      dns: { nameservers: ["192.0.2.53"] },
    };
    const conf = node.conf({ prevResult });
    const result = node.add({ containerId, netns: pod.path }, conf);
    try {
      expect(result.interfaces.map((i: { name: string }) => i.name)).toEqual(["dummy0", "cni0", expect.stringMatching(/^veth/), "eth0"]);
      expect(result.interfaces[0]).toEqual(prevResult.interfaces[0]);
      expect(result.ips).toEqual([prevResult.ips[0], { address: expect.stringMatching(/^10\.240\.0\.\d+\/24$/), gateway: "10.240.0.1", interface: 3 }]);
      expect(result.routes).toEqual(prevResult.routes);
      expect(result.dns).toEqual(prevResult.dns);
      const check = node.run("CHECK", { containerId, netns: pod.path }, { ...node.conf(), prevResult: result });
      expect(check.code, check.stdout).toBe(0);
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, conf);
    }
  });

  it("gives the address asked for in CNI_ARGS IP=, args.cni.ips or runtimeConfig.ips; 104 when it is taken, creating nothing", () => {
    const conf = node.conf({ bridge: "cnireq", ipam: { ranges: [[{ subnet: "10.247.0.0/24" }], [{ subnet: "fd00:247::/64" }]], dataDir: node.dataDir } });
    const asked = [
      { extra: { args: "IgnoreUnknown=1;IP=10.247.0.50,fd00:247::50" }, conf, ips: ["10.247.0.50/24", "fd00:247::50/64"] },
      { extra: {}, conf: { ...conf, args: { cni: { ips: ["10.247.0.51"] } } }, ips: ["10.247.0.51/24", expect.stringMatching(/^fd00:247::/)] },
      { extra: {}, conf: { ...conf, runtimeConfig: { ips: ["10.247.0.52/24", "fd00:247::52/64"] } }, ips: ["10.247.0.52/24", "fd00:247::52/64"] },
    ];
    const added: { containerId: string; netns: string }[] = [];
    try {
      for (const { extra, conf: asking, ips } of asked) {
        const attachment = { containerId: node.containerId(), netns: node.pod().path };
        const result = node.run("ADD", attachment, asking, extra);
        expect(result.code, result.stdout).toBe(0);
        added.push(attachment);
        expect(result.json.ips.map((ip: { address: string }) => ip.address)).toEqual(ips);
      }
      const [nodeLinks, reservations] = [linkNames(node.node), node.reservations()];
      const taken = node.run("ADD", { containerId: node.containerId(), netns: node.pod().path }, conf, { args: "IP=10.247.0.50" });
      expect(taken.json).toMatchObject({ code: 104, msg: "Cannot allocate IP 10.247.0.50: already reserved in network \"" + node.networkName + "\"" });
      const outside = node.run("ADD", { containerId: node.containerId(), netns: node.pod().path }, { ...conf, runtimeConfig: { ips: ["10.9.9.9"] } });
      expect(outside.json).toMatchObject({ code: 104, msg: expect.stringContaining("10.9.9.9: not in any range") });
      const notAnIp = node.run("ADD", { containerId: node.containerId(), netns: node.pod().path }, conf, { args: "IP=10.247.0.999" });
      expect(notAnIp.json).toMatchObject({ code: 4, msg: expect.stringContaining("10.247.0.999") });
      expect(linkNames(node.node)).toEqual(nodeLinks);
      expect(node.reservations()).toEqual(reservations);
    } finally {
      for (const attachment of added) node.run("DEL", attachment, conf);
    }
    expect(node.reservations()).toEqual([]);
  });

  const failingRoute = { dst: "192.0.2.0/24", gw: "198.51.100.1" }; // its gateway is on no link: the pod route fails

  it("rolls back everything when a late step fails (a route whose gateway is unreachable), the bridge it created too", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const conf = node.conf({
      bridge: "cnirb",
      ipam: { ranges: [[{ subnet: "10.243.0.0/24" }]], routes: [failingRoute], dataDir: node.dataDir },
    });
    const linksBefore = linkNames(node.node);
    const result = node.run("ADD", { containerId, netns: pod.path }, conf);
    expect(result.code).toBe(1);
    expect(result.json.msg).toContain("192.0.2.0/24");
    expect(result.json.details ?? "").not.toContain("rollback incomplete");
    expect(node.reservations()).toEqual([]);
    expect(linkNames(node.node)).toEqual(linksBefore);
    expect(pod.exec(["ip", "-o", "link"])).not.toContain("eth0");
  });

  it("a failed ADD leaves a bridge it did not create, and the pods on it, as they were", () => {
    const conf = node.conf({ bridge: "cnikeep", ipam: { ranges: [[{ subnet: "10.244.0.0/24" }]], dataDir: node.dataDir } });
    const [a, b] = [node.pod("a"), node.pod("b")];
    const [idA, idB] = [node.containerId(), node.containerId()];
    const first = node.add({ containerId: idA, netns: a.path }, conf);
    try {
      const bridgeBefore = node.node.exec(["ip", "-o", "addr", "show", "dev", "cnikeep"]);
      const failed = node.run("ADD", { containerId: idB, netns: b.path }, { ...conf, ipam: { ...(conf.ipam as object), routes: [failingRoute] } });
      expect(failed.code).toBe(1);
      expect(node.node.exec(["ip", "-o", "addr", "show", "dev", "cnikeep"])).toBe(bridgeBefore);
      expect(node.node.exec(["ip", "-o", "link", "show", "master", "cnikeep"])).toContain(first.interfaces[1].name);
      expect(node.reservations()).toEqual([first.ips[0].address.split("/")[0]]);
      const check = node.run("CHECK", { containerId: idA, netns: a.path }, { ...conf, prevResult: first });
      expect(check.code, check.stdout).toBe(0);
    } finally {
      node.run("DEL", { containerId: idA, netns: a.path }, conf);
    }
  });

  it("takes the node subnet from the agent's subnet file when ipam.ranges is absent", () => {
    const subnetFile = path.join(node.dir, "subnet.env");
    fs.writeFileSync(subnetFile, "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n");
    const pod = node.pod();
    const containerId = node.containerId();
    const conf = node.conf({ subnetFile, bridge: "cnisf", ipam: { dataDir: node.dataDir } });
    const result = node.add({ containerId, netns: pod.path }, conf);
    try {
      expect(result.ips[0]).toMatchObject({ address: expect.stringMatching(/^10\.244\.7\.\d+\/24$/), gateway: "10.244.7.1" });
      expect(result.routes).toContainEqual({ dst: "10.244.0.0/16", gw: "10.244.7.1" });
      expect(JSON.parse(pod.exec(["ip", "-j", "link", "show", "eth0"]))[0].mtu).toBe(1400);
      expect(pod.exec(["ip", "route", "show", "10.244.0.0/16"])).toContain("via 10.244.7.1");
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, conf);
    }
  });

  it("answers 11 (try again later) while the subnet file is missing, creating nothing", () => {
    const pod = node.pod();
    const conf = node.conf({ subnetFile: path.join(node.dir, "absent.env"), bridge: "cnimiss", ipam: { dataDir: node.dataDir } });
    const result = node.run("ADD", { containerId: node.containerId(), netns: pod.path }, conf);
    expect(result.json).toMatchObject({ code: 11, msg: expect.stringContaining("absent.env") });
    expect(node.node.exec(["ip", "-o", "link"])).not.toContain("cnimiss");
  });
});

describe("DEL, CHECK, GC, STATUS", () => {
  it("DEL succeeds after the pod's netns is gone, and releases the IP", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    node.add({ containerId, netns: pod.path });
    pod.remove();
    const del = node.run("DEL", { containerId, netns: pod.path }, node.conf());
    expect(del.code, del.stdout).toBe(0);
    const delWithoutNetns = node.run("DEL", { containerId, netns: "" }, node.conf());
    expect(delWithoutNetns.code, delWithoutNetns.stdout).toBe(0);
    expect(node.reservations()).toEqual([]);
  });

  it("DEL succeeds when the pod's interface is already gone, and releases the IP", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const result = node.add({ containerId, netns: pod.path });
    pod.exec(["ip", "link", "del", "eth0"]); // takes the host end with it
    expect(node.hostVeths()).not.toContain(result.interfaces[1].name);
    const del = node.run("DEL", { containerId, netns: pod.path }, node.conf());
    expect(del.code, del.stdout).toBe(0);
    expect(node.reservations()).toEqual([]);
  });

  it("CHECK names what differs: a removed address, a changed MAC", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const conf = node.conf();
    const result = node.add({ containerId, netns: pod.path }, conf);
    try {
      pod.exec(["ip", "addr", "del", result.ips[0].address, "dev", "eth0"]);
      const check = node.run("CHECK", { containerId, netns: pod.path }, { ...conf, prevResult: result });
      expect(check.json).toMatchObject({ code: 103, msg: expect.stringContaining(result.ips[0].address) });
      pod.exec(["ip", "addr", "add", result.ips[0].address, "dev", "eth0"]);
      pod.exec(["ip", "link", "set", "eth0", "address", "02:00:00:00:00:01"]);
      const macCheck = node.run("CHECK", { containerId, netns: pod.path }, { ...conf, prevResult: result });
      expect(macCheck.json).toMatchObject({ code: 103, msg: expect.stringContaining("MAC") });
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, conf);
    }
  });

  it("CHECK names what differs: a missing route, the host veth off the bridge or gone, a reservation lost or another's", () => {
    const pod = node.pod();
    const containerId = node.containerId();
    const conf = node.conf({ ipam: { ranges: [[{ subnet: "10.240.0.0/24" }]], routes: [{ dst: "192.0.2.0/24" }], dataDir: node.dataDir } });
    const result = node.add({ containerId, netns: pod.path }, conf);
    const check = () => node.run("CHECK", { containerId, netns: pod.path }, { ...conf, prevResult: result }).json as { code: number; msg: string } | undefined;
    const ip = result.ips[0].address.split("/")[0] as string;
    const hostVeth = result.interfaces[1].name as string;
    const reservation = path.join(node.dataDir, node.networkName, ip);
    try {
      expect(check()).toBeUndefined();

      pod.exec(["ip", "route", "del", "192.0.2.0/24"]);
      expect(check()).toMatchObject({ code: 103, msg: expect.stringContaining("route 192.0.2.0/24 via 10.240.0.1 is missing") });
      pod.exec(["ip", "route", "add", "192.0.2.0/24", "via", "10.240.0.1", "dev", "eth0", "proto", "87"]);

      node.node.exec(["ip", "link", "set", hostVeth, "nomaster"]);
      expect(check()).toMatchObject({ code: 103, msg: expect.stringContaining(`${hostVeth} is not attached to bridge cni0`) });
      node.node.exec(["ip", "link", "set", hostVeth, "master", "cni0"]);

      const saved = fs.readFileSync(reservation, "utf8");
      fs.rmSync(reservation);
      expect(check()).toMatchObject({ code: 103, msg: expect.stringContaining(`IP ${ip} is not reserved for ${containerId}/eth0`) });
      fs.writeFileSync(reservation, "someone-else\r\neth0");
      expect(check()).toMatchObject({ code: 103, msg: expect.stringContaining(`IP ${ip} is not reserved for ${containerId}/eth0`) });
      fs.writeFileSync(reservation, saved);
      expect(check()).toBeUndefined();

      node.node.exec(["ip", "link", "del", hostVeth]); // the pod end goes with it
      expect(check()).toMatchObject({ code: 103, msg: expect.stringContaining("eth0 does not exist") });
    } finally {
      node.run("DEL", { containerId, netns: pod.path }, conf);
    }
    expect(node.reservations()).toEqual([]);
  });

  it("GC releases every reservation and host veth not in cni.dev/valid-attachments", () => {
    const pods = [node.pod(), node.pod(), node.pod()];
    const ids = pods.map(() => node.containerId());
    const results = pods.map((pod, i) => node.add({ containerId: ids[i]!, netns: pod.path }));
    const keep = results[0]!;
    const gc = node.run("GC", {}, node.conf({ "cni.dev/valid-attachments": [{ containerID: ids[0], ifname: "eth0" }] }));
    expect(gc.code, gc.stdout).toBe(0);
    expect(node.reservations()).toEqual([keep.ips[0].address.split("/")[0]]);
    const veths = node.hostVeths();
    expect(veths).toContain(keep.interfaces[1].name);
    for (const dropped of results.slice(1)) expect(veths).not.toContain(dropped.interfaces[1].name);
    const missing = node.run("GC", {}, node.conf());
    expect(missing.json).toMatchObject({ code: 7, msg: expect.stringContaining("cni.dev/valid-attachments") });
    node.run("DEL", { containerId: ids[0]!, netns: pods[0]!.path }, node.conf());
  });

  it("STATUS is ready with free addresses, 50 when the range is exhausted or the subnet file is missing", () => {
    expect(node.run("STATUS", {}, node.conf()).code).toBe(0);
    const tiny = node.conf({ bridge: "cnitiny", ipam: { ranges: [[{ subnet: "10.242.0.0/30" }]], dataDir: node.dataDir } });
    const pod = node.pod();
    const containerId = node.containerId();
    node.add({ containerId, netns: pod.path }, tiny); // a /30 holds one pod beside the gateway
    const status = node.run("STATUS", {}, tiny);
    expect(status.json).toMatchObject({ code: 50, msg: expect.stringContaining("10.242.0.0/30") });
    const full = node.run("ADD", { containerId: node.containerId(), netns: node.pod().path }, tiny);
    expect(full.json).toMatchObject({ code: 100, msg: expect.stringContaining("10.242.0.0/30") });
    node.run("DEL", { containerId, netns: pod.path }, tiny);
    const noFile = node.run("STATUS", {}, node.conf({ subnetFile: path.join(node.dir, "none.env"), ipam: { dataDir: node.dataDir } }));
    expect(noFile.json).toMatchObject({ code: 50, msg: expect.stringContaining("none.env") });
  });

  it("VERSION lists every supported version", () => {
    const result = node.run("VERSION", {}, { cniVersion: "1.1.0" });
    expect(result.json).toEqual({ cniVersion: "1.1.0", supportedVersions: [...SPEC_VERSIONS] });
  });
});
