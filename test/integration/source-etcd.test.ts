// The etcd node source against a real etcd on loopback (started here, stopped by PID in afterAll): flannel's
// key layout and lease format, allocation by transaction, reuse after a restart, expiry, watch, and recovery
// by relisting after the watch's revision was compacted while etcd was unreachable.
import { Etcd3 } from "etcd3";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { LocalAnnouncement, NetworkConfig, NodeSnapshot } from "../../agent/model";
import { EtcdSource, type EtcdSourceOptions } from "../../agent/sources/etcd";
import { SourceError } from "../../agent/errors";
import { startEtcd, startTcpProxy, type TcpProxy, type TestEtcd } from "../support/etcd";
import { announcing } from "../support/announce";

const network: NetworkConfig = {
  network: "10.244.0.0/16",
  subnetLen: 24,
  backend: { type: "vxlan", vni: 1, port: 8472 },
  nonMasqueradeCidrs: [],
};
const nodeA: LocalAnnouncement = { name: "node-a", publicIp: "192.168.50.11", vtepMac: "0e:00:00:00:00:0a", backendType: "vxlan" };
const nodeB: LocalAnnouncement = { name: "node-b", publicIp: "192.168.50.12", vtepMac: "0e:00:00:00:00:0b", backendType: "vxlan" };
const nodeC: LocalAnnouncement = { name: "node-c", publicIp: "192.168.50.13", backendType: "host-gw" };

let etcd: TestEtcd;
let admin: Etcd3;
const open: EtcdSource[] = [];
const proxies: TcpProxy[] = [];
let prefixes = 0;

function newPrefix(): string {
  return `/weft-test/${process.pid}-${++prefixes}/coreos.com/network`;
}

function source(options: Partial<EtcdSourceOptions> & { prefix: string }): EtcdSource {
  const created = new EtcdSource({ network, etcd: { hosts: etcd.endpoint }, retryDelayMs: 100, maxRetryDelayMs: 1_000, ...options });
  open.push(created);
  return created;
}

function names(snapshot: NodeSnapshot): string[] {
  return snapshot.nodes.map((n) => n.name);
}

function lease(name: string, publicIp: string, mac?: string): string {
  const attrs: Record<string, unknown> = { PublicIP: publicIp, PublicIPv6: null, BackendType: "vxlan" };
  if (mac) attrs.BackendData = { VNI: 1, VtepMAC: mac };
  attrs.WeftNodeName = name;
  return JSON.stringify(attrs);
}

beforeAll(async () => {
  etcd = await startEtcd();
  admin = new Etcd3({ hosts: etcd.endpoint });
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const p of proxies.splice(0)) await p.close();
});

afterAll(async () => {
  admin?.close();
  await etcd?.stop();
});

describe("etcd source: claiming", () => {
  it("gives two agents distinct subnets, written in flannel's layout and format", async () => {
    const prefix = newPrefix();
    const a = source({ prefix });
    const b = source({ prefix });
    const [claimedA, claimedB] = await Promise.all([a.claimLocal(...announcing(nodeA)), b.claimLocal(...announcing(nodeB))]);

    for (const claimed of [claimedA, claimedB]) {
      expect(claimed.podCidrs).toHaveLength(1);
      expect(claimed.podCidrs[0]).toMatch(/^10\.244\.\d+\.0\/24$/);
      expect(claimed.podCidrs[0]).not.toBe("10.244.0.0/24"); // flannel's SubnetMin skips the first subnet
    }
    expect(claimedA.podCidrs[0]).not.toBe(claimedB.podCidrs[0]);
    expect(claimedA).toEqual({ name: "node-a", podCidrs: claimedA.podCidrs, publicIp: "192.168.50.11", vtepMac: "0e:00:00:00:00:0a" });

    const config = JSON.parse((await admin.get(`${prefix}/config`).string())!);
    expect(config).toMatchObject({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan", VNI: 1, Port: 8472 } });

    const key = `${prefix}/subnets/${claimedA.podCidrs[0]!.replace("/", "-")}`;
    const stored = await admin.getAll().prefix(`${prefix}/subnets/`).exec();
    expect(stored.kvs.map((kv) => kv.key.toString()).sort()).toEqual(
      [key, `${prefix}/subnets/${claimedB.podCidrs[0]!.replace("/", "-")}`].sort(),
    );
    const kvA = stored.kvs.find((kv) => kv.key.toString() === key)!;
    expect(kvA.lease).not.toBe("0");
    expect(JSON.parse(kvA.value.toString())).toEqual({
      PublicIP: "192.168.50.11", PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "0e:00:00:00:00:0a" }, WeftNodeName: "node-a",
    });
  });

  it("lets a restarted agent reuse its subnet, and adopts a flannel lease with its public IP", async () => {
    const prefix = newPrefix();
    const first = source({ prefix });
    const before = await first.claimLocal(...announcing(nodeA));
    await first.close();
    const second = source({ prefix });
    const after = await second.claimLocal(...announcing(nodeA));
    expect(after.podCidrs).toEqual(before.podCidrs);
    expect((await admin.getAll().prefix(`${prefix}/subnets/`).keys()).length).toBe(1);

    // A lease flannel wrote for node-b's address (no WeftNodeName): node-b's agent takes it over.
    await admin.put(`${prefix}/subnets/10.244.77.0-24`).value(JSON.stringify({ PublicIP: "192.168.50.12", PublicIPv6: null, BackendType: "vxlan" }));
    const b = source({ prefix });
    expect((await b.claimLocal(...announcing(nodeB))).podCidrs).toEqual(["10.244.77.0/24"]);
    const value = JSON.parse((await admin.get(`${prefix}/subnets/10.244.77.0-24`).string())!);
    expect(value).toMatchObject({ WeftNodeName: "node-b", BackendData: { VtepMAC: "0e:00:00:00:00:0b" } });
  });

  it("renews a live lease, and frees the subnet of an agent that stopped renewing once its TTL expires", async () => {
    const prefix = newPrefix();
    const observer = source({ prefix });
    await observer.start(() => undefined);
    const a = source({ prefix, leaseTtlSeconds: 2 });
    const c = source({ prefix, leaseTtlSeconds: 2 });
    const claimedA = await a.claimLocal(...announcing(nodeA));
    const claimedC = await c.claimLocal(...announcing(nodeC));
    const claimedAt = Date.now();
    await vi.waitFor(() => expect(names(observer.snapshot())).toEqual(["node-a", "node-c"]));
    expect(observer.snapshot().nodes.find((n) => n.name === "node-c")).toEqual({ name: "node-c", podCidrs: claimedC.podCidrs, publicIp: "192.168.50.13" });

    await a.close(); // stops renewing node-a's lease, does not revoke it
    const keyA = `${prefix}/subnets/${claimedA.podCidrs[0]!.replace("/", "-")}`;
    expect(await admin.get(keyA).string()).not.toBeNull();
    await vi.waitFor(() => expect(names(observer.snapshot())).toEqual(["node-c"]), { timeout: 10_000, interval: 100 });
    expect(await admin.get(keyA).string()).toBeNull();
    // node-c, renewed every TTL/3, outlives two TTLs.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, claimedAt + 4_500 - Date.now())));
    expect(names(observer.snapshot())).toEqual(["node-c"]);
    expect(await admin.get(`${prefix}/subnets/${claimedC.podCidrs[0]!.replace("/", "-")}`).string()).not.toBeNull();

    // The freed subnet can be taken again, here by an agent that remembers it from an earlier run.
    const b = source({ prefix, previousPodCidrs: claimedA.podCidrs });
    expect((await b.claimLocal(...announcing(nodeB))).podCidrs).toEqual(claimedA.podCidrs);
  });

  it("re-creates its key for the same subnet when its lease is revoked or the key deleted", async () => {
    const prefix = newPrefix();
    const a = source({ prefix });
    await a.start(() => undefined);
    const claimed = await a.claimLocal(...announcing(nodeA));
    const key = `${prefix}/subnets/${claimed.podCidrs[0]!.replace("/", "-")}`;
    const leaseOf = async (): Promise<string | undefined> => (await admin.getAll().prefix(key).exec()).kvs[0]?.lease;
    const first = await leaseOf();

    await admin.leaseClient.leaseRevoke({ ID: first! });
    await vi.waitFor(async () => expect(await leaseOf()).toMatch(/^[1-9]\d*$/));
    const second = await leaseOf();
    expect(second).not.toBe(first);

    await admin.delete().key(key);
    await vi.waitFor(async () => expect(await leaseOf()).toMatch(/^[1-9]\d*$/));
    expect(JSON.parse((await admin.get(key).string())!)).toMatchObject({ WeftNodeName: "node-a" });
    await vi.waitFor(() => expect(a.snapshot().nodes).toEqual([claimed]));
    expect(a.snapshot().error).toBeUndefined();
    await vi.waitFor(() => expect(a.keeper.status()).toMatchObject({ repairs: { lease: 2 }, lastRepair: { what: "lease", detail: "This node's subnet key was deleted" } }));
    expect(a.keeper.status().problem).toBeUndefined();
  });

  it("puts its key back when overwritten by hand with a value that is still its own, on its own lease", async () => {
    const prefix = newPrefix();
    const a = source({ prefix });
    await a.start(() => undefined);
    const claimed = await a.claimLocal(...announcing(nodeA));
    const key = `${prefix}/subnets/${claimed.podCidrs[0]!.replace("/", "-")}`;
    const stored = async () => (await admin.getAll().prefix(key).exec()).kvs[0]!;
    const ours = await stored();

    await admin.put(key).value(lease("node-a", "192.168.50.11", "0e:00:00:00:00:ff")); // a wrong MAC, no lease
    await vi.waitFor(async () => expect((await stored()).value.toString()).toBe(ours.value.toString()));
    expect((await stored()).lease).toMatch(/^[1-9]\d*$/);
    await vi.waitFor(() => expect(a.keeper.status()).toMatchObject({ repairs: { lease: 1 }, lastRepair: { what: "lease", detail: expect.stringContaining("overwritten") } }));

    // The same value detached from its lease (it would never expire): attached to a lease again.
    await admin.put(key).value(ours.value.toString());
    await vi.waitFor(async () => expect((await stored()).lease).toMatch(/^[1-9]\d*$/));
    await vi.waitFor(() => expect(a.keeper.status().repairs).toEqual({ lease: 2 }));
    expect(a.keeper.status().problem).toBeUndefined();
  });

  it("says so, and does not fight or program it, when another node takes its subnet key", async () => {
    const prefix = newPrefix();
    const a = source({ prefix });
    await a.start(() => undefined);
    const claimed = await a.claimLocal(...announcing(nodeA));
    const key = `${prefix}/subnets/${claimed.podCidrs[0]!.replace("/", "-")}`;
    await admin.put(key).value(lease("node-x", "192.168.50.99", "0e:00:00:00:00:99"));
    await vi.waitFor(() => expect(a.keeper.status().problem).toMatch(new RegExp(`^this node's subnet ${claimed.podCidrs[0]!.replace(/\./g, "\\.")} was taken by node node-x`)));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(JSON.parse((await admin.get(key).string())!)).toMatchObject({ WeftNodeName: "node-x" });
    expect(a.keeper.status().repairs).toEqual({});
    // The record is node-x's now; the agent's desired state skips it (it overlaps this node's own subnet).
    await vi.waitFor(() => expect(a.snapshot().nodes.map((n) => n.name)).toEqual(["node-x"]));
  });

  it("stops after a bounded number of repairs when another writer keeps overwriting its key", async () => {
    const prefix = newPrefix();
    const a = source({ prefix, repairGuard: { limit: 3, windowMs: 10_000, pauseMs: 60_000 } });
    await a.start(() => undefined);
    const claimed = await a.claimLocal(...announcing(nodeA));
    const key = `${prefix}/subnets/${claimed.podCidrs[0]!.replace("/", "-")}`;
    for (let i = 0; i < 10; i++) {
      await admin.put(key).value(lease("node-a", "192.168.50.11", `0e:00:00:00:01:${String(i).padStart(2, "0")}`));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await vi.waitFor(() => expect(a.keeper.status().problem).toMatch(/^another writer keeps changing this node's lease key .*: not repairing it for \d+ s$/));
    expect(a.keeper.status().repairs).toEqual({ lease: 3 });
    expect(JSON.parse((await admin.get(key).string())!)).toMatchObject({ BackendData: { VtepMAC: "0e:00:00:00:01:09" } });
  });

  it("refuses a network config key that disagrees with its own", async () => {
    const prefix = newPrefix();
    await admin.put(`${prefix}/config`).value(JSON.stringify({ Network: "10.100.0.0/16", Backend: { Type: "vxlan" } }));
    const a = source({ prefix });
    const error = await a.claimLocal(...announcing(nodeA)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceError);
    expect(error).toMatchObject({ code: "ERR_NETWORK_CONFIG_MISMATCH" });
    expect((error as Error).message).toContain("Network");
  });

  it("keeps retrying while etcd is unreachable and honours the AbortSignal", async () => {
    const proxy = await startTcpProxy(etcd.endpoint);
    proxies.push(proxy);
    await proxy.pause();
    const a = source({ prefix: newPrefix(), etcd: { hosts: proxy.endpoint } });
    const started = Date.now();
    await expect(a.claimLocal(...announcing(nodeA), AbortSignal.timeout(500))).rejects.toMatchObject({ name: "TimeoutError" });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe("etcd source: watching", () => {
  it("follows puts and deletes, and skips garbage leases while keeping the others", async () => {
    const prefix = newPrefix();
    const s = source({ prefix });
    const seen: NodeSnapshot[] = [];
    await s.start((snapshot) => seen.push(snapshot));
    expect(s.snapshot()).toEqual({ synced: true, nodes: [], rejected: [] });

    // flannel's own lease: no name, so it is named after its subnet key.
    await admin.put(`${prefix}/subnets/10.244.7.0-24`).value(JSON.stringify({ PublicIP: "192.168.50.17", BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "0E:00:00:00:00:17" } }));
    await admin.put(`${prefix}/subnets/10.244.8.0-24`).value(lease("node-h", "192.168.50.18", "0e:00:00:00:00:18"));
    await admin.put(`${prefix}/subnets/10.244.9.0-24`).value("{not json");
    await admin.put(`${prefix}/subnets/10.245.1.0-24`).value(lease("node-out", "192.168.50.19"));
    await admin.put(`${prefix}/subnets/10.244.10.0-24`).value(lease("node-badmac", "192.168.50.20", "ff:ff:ff:ff:ff:ff"));
    await admin.put(`${prefix}/subnets/../../etc`).value(lease("node-key", "192.168.50.21"));

    await vi.waitFor(() => expect(s.snapshot().rejected).toHaveLength(4));
    const snapshot = s.snapshot();
    expect(snapshot.nodes).toEqual([
      { name: "10.244.7.0-24", podCidrs: ["10.244.7.0/24"], publicIp: "192.168.50.17", vtepMac: "0e:00:00:00:00:17" },
      { name: "node-h", podCidrs: ["10.244.8.0/24"], publicIp: "192.168.50.18", vtepMac: "0e:00:00:00:00:18" },
    ]);
    expect(snapshot.rejected).toEqual([
      { name: "../../etc", reason: expect.stringContaining("not a flannel subnet key") },
      { name: "10.244.9.0-24", reason: expect.stringContaining("not a JSON object") },
      { name: "node-badmac", reason: expect.stringContaining("VTEP MAC") },
      { name: "node-out", reason: "pod CIDR 10.245.1.0/24 is outside the cluster network 10.244.0.0/16" },
    ]);

    await admin.delete().key(`${prefix}/subnets/10.244.7.0-24`);
    await vi.waitFor(() => expect(names(s.snapshot())).toEqual(["node-h"]));
    // The listener is called after the current task; the snapshot is computed on demand, so wait for both to agree.
    await vi.waitFor(() => expect(seen.at(-1)).toEqual(s.snapshot()));
  });

  it("keeps its nodes while etcd is unreachable, and relists when the watch's revision was compacted meanwhile", async () => {
    const prefix = newPrefix();
    const proxy = await startTcpProxy(etcd.endpoint);
    proxies.push(proxy);
    await admin.put(`${prefix}/subnets/10.244.10.0-24`).value(lease("node-x", "192.168.50.30"));
    await admin.put(`${prefix}/subnets/10.244.11.0-24`).value(lease("node-y", "192.168.50.31"));
    const s = source({ prefix, etcd: { hosts: proxy.endpoint } });
    const seen: NodeSnapshot[] = [];
    await s.start((snapshot) => seen.push(snapshot));
    expect(names(s.snapshot())).toEqual(["node-x", "node-y"]);

    await proxy.pause();
    await vi.waitFor(() => expect(s.snapshot().error).toBeDefined(), { timeout: 10_000 });
    await admin.delete().key(`${prefix}/subnets/10.244.11.0-24`);
    await admin.put(`${prefix}/subnets/10.244.12.0-24`).value(lease("node-z", "192.168.50.32"));
    const { header } = await admin.getAll().prefix(prefix).exec();
    await admin.kv.compact({ revision: header.revision, physical: true });
    expect(names(s.snapshot())).toEqual(["node-x", "node-y"]); // an outage never removes state

    await proxy.resume();
    await vi.waitFor(() => {
      const snapshot = s.snapshot();
      expect(names(snapshot)).toEqual(["node-x", "node-z"]);
      expect(snapshot.error).toBeUndefined();
    }, { timeout: 20_000, interval: 100 });
    expect(seen.every((snapshot) => names(snapshot).includes("node-x"))).toBe(true);
  });
});
