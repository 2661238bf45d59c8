// The kube node source (client-node's informer) against the fake list/watch API server of test/support:
// initial list, watch events, 410 Gone both ways, bookmarks, the API going away and coming back, and this
// node's claim (wait for spec.podCIDR, annotations, NetworkUnavailable condition).
import { afterEach, describe, expect, it, vi } from "vitest";
import type { LocalAnnouncement, LocalHints, NetworkConfig, NodeSnapshot } from "../../agent/model";
import type { Logger } from "../../agent/log";
import { KubeSource, type KubeSourceOptions } from "../../agent/sources/kube";
import { FakeKubeApiServer, type FakeKubeApiServerOptions, type FakeNode } from "../support/fake-kube-apiserver";
import { announcing } from "../support/announce";

const network: NetworkConfig = {
  network: "10.244.0.0/16",
  subnetLen: 24,
  backend: { type: "vxlan", vni: 1, port: 8472 },
  nonMasqueradeCidrs: [],
};

function kubeNode(name: string, index: number, fields: { podCIDR?: string; annotations?: Record<string, string>; internalIp?: string } = {}): FakeNode {
  const podCIDR = "podCIDR" in fields ? fields.podCIDR : `10.244.${index}.0/24`;
  return {
    metadata: { name, annotations: fields.annotations ?? { "weft.dev/public-ip": `192.168.50.${index}`, "weft.dev/vtep-mac": `0e:00:00:00:00:${index.toString(16).padStart(2, "0")}` } },
    spec: podCIDR === undefined ? {} : { podCIDR, podCIDRs: [podCIDR] },
    status: {
      addresses: [{ type: "InternalIP", address: fields.internalIp ?? `192.168.60.${index}` }, { type: "Hostname", address: name }],
      conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }],
    },
  };
}

function peer(name: string, index: number): { name: string; podCidrs: string[]; publicIp: string; vtepMac: string } {
  return { name, podCidrs: [`10.244.${index}.0/24`], publicIp: `192.168.50.${index}`, vtepMac: `0e:00:00:00:00:${index.toString(16).padStart(2, "0")}` };
}

const servers: FakeKubeApiServer[] = [];
const sources: KubeSource[] = [];

async function setup(serverOptions: FakeKubeApiServerOptions = {}, options: Partial<KubeSourceOptions> = {}) {
  const server = await FakeKubeApiServer.start({ bookmarkIntervalMs: 200, ...serverOptions });
  servers.push(server);
  const source = new KubeSource({ network, kubeConfig: server.kubeConfig(), retryDelayMs: 100, maxRetryDelayMs: 500, pollIntervalMs: 100, ...options });
  sources.push(source);
  const seen: NodeSnapshot[] = [];
  return { server, source, seen, start: () => source.start((snapshot) => seen.push(snapshot)) };
}

function names(snapshot: NodeSnapshot): string[] {
  return snapshot.nodes.map((n) => n.name);
}

function lists(server: FakeKubeApiServer): number {
  return server.requests.filter((r) => r.method === "GET" && r.path === "/api/v1/nodes" && r.query.watch === undefined).length;
}

afterEach(async () => {
  for (const source of sources.splice(0)) await source.close();
  for (const server of servers.splice(0)) await server.close();
});

describe("kube source: list and watch", () => {
  it("reports synced after the initial list, with garbage nodes skipped and the others kept", async () => {
    const { server, source, start, seen } = await setup();
    server.upsertNode(kubeNode("node-a", 1));
    server.upsertNode(kubeNode("node-b", 2, { annotations: {} })); // no agent yet: InternalIP, no MAC
    server.upsertNode(kubeNode("node-c", 3, { podCIDR: undefined }));
    server.upsertNode(kubeNode("node-d", 4, { annotations: { "weft.dev/public-ip": "$(reboot)" } }));
    server.upsertNode(kubeNode("node-e", 5, { podCIDR: "10.99.5.0/24" }));
    server.upsertNode(kubeNode("node-f", 6, { annotations: { "weft.dev/public-ip": "192.168.50.6", "weft.dev/vtep-mac": "not-a-mac" } }));
    server.upsertNode(kubeNode("node-g", 7, { podCIDR: "10.244.1.128/25" })); // inside node-a's
    expect(source.snapshot().synced).toBe(false);

    await start();
    await vi.waitFor(() => expect(source.snapshot().synced).toBe(true));
    const snapshot = source.snapshot();
    expect(snapshot.nodes).toEqual([peer("node-a", 1), { name: "node-b", podCidrs: ["10.244.2.0/24"], publicIp: "192.168.60.2" }]);
    expect(snapshot.rejected).toEqual([
      { name: "node-c", reason: "no pod CIDR assigned" },
      { name: "node-d", reason: 'annotation weft.dev/public-ip "$(reboot)" is not a unicast IP address' },
      { name: "node-e", reason: "pod CIDR 10.99.5.0/24 is outside the cluster network 10.244.0.0/16" },
      { name: "node-f", reason: 'annotation weft.dev/vtep-mac "not-a-mac" is not a unicast MAC address' },
      { name: "node-g", reason: "pod CIDR 10.244.1.128/25 overlaps node node-a's 10.244.1.0/24" },
    ]);
    expect(snapshot.error).toBeUndefined();
    await vi.waitFor(() => expect(seen.at(-1)).toEqual(snapshot)); // the listener is called after the current task
    expect(seen.filter((s) => s.synced)).toHaveLength(1); // the whole list is one change
    const watch = server.requests.find((r) => r.query.watch === "true");
    expect(watch?.query).toMatchObject({ allowWatchBookmarks: "true", resourceVersion: server.resourceVersion });
  });

  it("follows added, modified and deleted nodes", async () => {
    const { server, source, start } = await setup();
    server.upsertNode(kubeNode("node-a", 1));
    await start();
    await vi.waitFor(() => expect(source.snapshot().synced).toBe(true));

    server.upsertNode(kubeNode("node-b", 2));
    await vi.waitFor(() => expect(source.snapshot().nodes).toEqual([peer("node-a", 1), peer("node-b", 2)]));
    server.upsertNode(kubeNode("node-b", 2, { annotations: { "weft.dev/public-ip": "192.168.50.22", "weft.dev/vtep-mac": "0E:00:00:00:00:22" } }));
    await vi.waitFor(() => expect(source.snapshot().nodes[1]).toEqual({ name: "node-b", podCidrs: ["10.244.2.0/24"], publicIp: "192.168.50.22", vtepMac: "0e:00:00:00:00:22" }));
    server.upsertNode(kubeNode("node-a", 1, { podCIDR: "garbage" }));
    await vi.waitFor(() => expect(source.snapshot().rejected).toEqual([{ name: "node-a", reason: 'pod CIDR "garbage" is not a CIDR' }]));
    server.deleteNode("node-a");
    server.deleteNode("node-b");
    await vi.waitFor(() => expect(source.snapshot()).toEqual({ synced: true, nodes: [], rejected: [] }));
    expect(lists(server)).toBe(1);
  });

  it("relists after a 410 ERROR event without ever losing the nodes that stayed", async () => {
    const { server, source, start, seen } = await setup();
    for (let i = 1; i <= 3; i++) server.upsertNode(kubeNode(`node-${i}`, i));
    await start();
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-1", "node-2", "node-3"]));

    server.expireWatches();      // ERROR {Status 410}, then the stream ends
    server.deleteNode("node-3"); // changes the client can only learn by relisting
    server.upsertNode(kubeNode("node-4", 4));
    server.compact();
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-1", "node-2", "node-4"]));
    expect(lists(server)).toBe(2);
    expect(seen.every((s) => ["node-1", "node-2"].every((n) => names(s).includes(n)))).toBe(true);
    expect(source.snapshot().error).toBeUndefined();
  });

  it("relists after an HTTP 410 on a watch from a compacted resourceVersion", async () => {
    const { server, source, start } = await setup({ tooOldResponse: "http" });
    server.upsertNode(kubeNode("node-1", 1));
    server.upsertNode(kubeNode("node-2", 2));
    await start();
    await vi.waitFor(() => expect(source.snapshot().synced).toBe(true));

    server.closeWatches(); // the client resumes from its resourceVersion, which the next lines make too old
    server.deleteNode("node-2");
    server.compact();
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-1"]));
    expect(lists(server)).toBe(2);
    expect(server.requests.some((r) => r.query.watch === "true" && Number(r.query.resourceVersion) < Number(server.resourceVersion))).toBe(true);
  });

  it("ignores bookmarks, but resumes the watch from a bookmark's resourceVersion", async () => {
    const { server, source, start, seen } = await setup({ bookmarkIntervalMs: 0 });
    server.upsertNode(kubeNode("node-1", 1));
    await start();
    await vi.waitFor(() => expect(source.snapshot().synced).toBe(true));

    // Writes to other resources move the resourceVersion on without a Node event; a bookmark tells the client.
    server.touchOtherResource();
    server.touchOtherResource();
    const rv = server.resourceVersion;
    server.sendBookmarks();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const afterBookmark = seen.length;
    server.closeWatches();
    await vi.waitFor(() => expect(server.openWatches).toBe(1), { timeout: 5_000 });
    const resumed = server.requests.filter((r) => r.query.watch === "true").at(-1)!;
    expect(resumed.query.resourceVersion).toBe(rv);
    expect(seen.length).toBe(afterBookmark); // neither the bookmark nor the reconnect changed the snapshot
    expect(names(source.snapshot())).toEqual(["node-1"]);
    expect(lists(server)).toBe(1);
  });

  it("keeps its nodes and reports the error while the API server is down, and recovers when it is back", async () => {
    const { server, source, start, seen } = await setup();
    server.upsertNode(kubeNode("node-1", 1));
    server.upsertNode(kubeNode("node-2", 2));
    await start();
    await vi.waitFor(() => expect(source.snapshot().synced).toBe(true));

    await server.stop();
    await vi.waitFor(() => expect(source.snapshot().error).toMatch(/fetch failed|ECONNREFUSED|terminated|closed|socket/i));
    server.upsertNode(kubeNode("node-3", 3)); // happens while the client cannot see it
    await new Promise((resolve) => setTimeout(resolve, 700)); // a few failed retries
    expect(names(source.snapshot())).toEqual(["node-1", "node-2"]);

    await server.restart();
    await vi.waitFor(() => {
      expect(names(source.snapshot())).toEqual(["node-1", "node-2", "node-3"]);
      expect(source.snapshot().error).toBeUndefined();
    }, { timeout: 10_000 });
    expect(lists(server)).toBe(1); // resumed from its resourceVersion: the history still had it
    expect(seen.every((s) => !s.synced || (names(s).includes("node-1") && names(s).includes("node-2")))).toBe(true);
  });

  it("rides out an API server that answers 500 and closes its watches every second: bounded backoff, no relist, nodes kept, then recovers", async () => {
    const { server, source, start, seen } = await setup({ bookmarkIntervalMs: 0 }, { retryDelayMs: 100, maxRetryDelayMs: 400 });
    for (const i of [1, 2, 3]) server.upsertNode(kubeNode(`node-${i}`, i));
    await start();
    await vi.waitFor(() => expect(source.snapshot().synced).toBe(true));
    await vi.waitFor(() => expect(server.openWatches).toBe(1));
    const nodes = source.snapshot().nodes;
    const seenBefore = seen.length;
    const closer = setInterval(() => server.closeWatches(), 1_000);
    try {
      // 1. Every request fails with 500 for 3 s (and the open watch is closed): the source retries on its backoff.
      const failedFrom = server.requests.length;
      const stormStart = Date.now();
      server.failRequests(500);
      server.closeWatches();
      await vi.waitFor(() => expect(source.snapshot().error).toBe("Kubernetes API: HTTP 500: Internal Server Error"));
      await new Promise((resolve) => setTimeout(resolve, 3_000 - (Date.now() - stormStart)));
      const failed = server.requests.slice(failedFrom);
      // Only watches, resumed from the last resourceVersion: no relist, so nothing to re-apply when it ends.
      expect(failed.every((r) => r.query.watch === "true" && r.query.resourceVersion !== undefined)).toBe(true);
      expect(lists(server)).toBe(1);
      // Delays of 100, 200, 400, 400 … ms, each ±20%: at the shortest (80, 160, 320 …) 3 s hold 11 attempts; a
      // retry loop without backoff makes hundreds.
      expect(failed.length).toBeGreaterThanOrEqual(3);
      expect(failed.length).toBeLessThanOrEqual(11);
      const gaps = failed.slice(1).map((r, i) => r.at - failed[i]!.at);
      expect(Math.min(...gaps.slice(2))).toBeGreaterThanOrEqual(0.8 * 400 - 20); // capped at maxRetryDelayMs
      expect(Math.max(...gaps)).toBeLessThanOrEqual(1.2 * 400 + 300); // and never longer
      expect(source.snapshot().nodes).toEqual(nodes);
      expect(seen.slice(seenBefore).every((s) => JSON.stringify(s.nodes) === JSON.stringify(nodes))).toBe(true);

      // 2. It answers again, but keeps closing watches every second: the source resumes each time, no relist,
      //    no change reported; the error clears and a node added meanwhile arrives.
      server.failRequests(undefined);
      server.upsertNode(kubeNode("node-4", 4));
      await vi.waitFor(() => {
        expect(names(source.snapshot())).toEqual(["node-1", "node-2", "node-3", "node-4"]);
        expect(source.snapshot().error).toBeUndefined();
      }, { timeout: 5_000 });
      const changes = seen.length;
      const watchesFrom = server.requests.length;
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const resumed = server.requests.slice(watchesFrom);
      expect(resumed.length).toBeGreaterThanOrEqual(1);
      expect(resumed.length).toBeLessThanOrEqual(4); // one watch per close at most
      expect(resumed.every((r) => r.query.watch === "true" && r.query.resourceVersion === server.resourceVersion)).toBe(true);
      expect(seen.length).toBe(changes);
      expect(lists(server)).toBe(1);
    } finally {
      clearInterval(closer);
    }
  });

  it("says it relists after a 410, and not while its first list keeps failing", async () => {
    const messages: string[] = [];
    const recorder: Logger = { debug: () => {}, info: (msg) => void messages.push(msg), warn: (msg) => void messages.push(msg), error: (msg) => void messages.push(msg), with: () => recorder };
    const { server, source, start } = await setup({}, { logger: recorder });
    server.upsertNode(kubeNode("node-1", 1));
    server.failRequests(500);
    await start();
    await vi.waitFor(() => expect(lists(server)).toBeGreaterThanOrEqual(3));
    server.failRequests(undefined);
    await vi.waitFor(() => expect(source.snapshot().synced).toBe(true));
    const relisted = "Watch expired (410 Gone): listing the nodes again";
    expect(messages).not.toContain(relisted);
    server.expireWatches();
    await vi.waitFor(() => expect(messages.filter((m) => m === relisted)).toHaveLength(1));
  });

  it("refuses an empty relist after an interruption and keeps its nodes", async () => {
    const { server, source, start } = await setup();
    server.upsertNode(kubeNode("node-1", 1));
    await start();
    await vi.waitFor(() => expect(source.snapshot().synced).toBe(true));

    server.expireWatches(); // the client relists, and finds…
    server.deleteNode("node-1"); // …no nodes at all
    await vi.waitFor(() => expect(source.snapshot().error).toMatch(/Refusing an empty node list/));
    expect(names(source.snapshot())).toEqual(["node-1"]);

    server.upsertNode(kubeNode("node-5", 5)); // the next retry lists a non-empty cluster again
    await vi.waitFor(() => {
      expect(names(source.snapshot())).toEqual(["node-5"]);
      expect(source.snapshot().error).toBeUndefined();
    });
  });
});

describe("kube source: claimLocal", () => {
  const local: LocalAnnouncement = { name: "node-self", publicIp: "192.168.50.9", vtepMac: "0E:AA:BB:CC:DD:09", backendType: "vxlan" };

  it("waits for spec.podCIDR, then publishes its annotations; once ready, sets NetworkUnavailable=False", async () => {
    const { server, source, start } = await setup();
    server.upsertNode(kubeNode("node-self", 9, { podCIDR: undefined, annotations: { "example.com/keep": "yes" } }));
    await start();
    let claimed: unknown;
    const claim = source.claimLocal(...announcing(local)).then((node) => (claimed = node));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(claimed).toBeUndefined();
    expect(server.requests.some((r) => r.method === "PATCH")).toBe(false);

    server.upsertNode(kubeNode("node-self", 9, { annotations: { "example.com/keep": "yes" } }));
    await claim;
    let hints: LocalHints | undefined;
    await source.claimLocal("node-self", (given) => ((hints = given), local));
    expect(hints).toEqual({ address: "192.168.60.9" }); // the InternalIP
    expect(claimed).toEqual({ name: "node-self", podCidrs: ["10.244.9.0/24"], publicIp: "192.168.50.9", vtepMac: "0e:aa:bb:cc:dd:09" });

    const node = server.getNode("node-self")!;
    expect(node.metadata.annotations).toEqual({
      "example.com/keep": "yes",
      "weft.dev/public-ip": "192.168.50.9",
      "weft.dev/vtep-mac": "0e:aa:bb:cc:dd:09",
      "weft.dev/backend-type": "vxlan",
    });
    expect(node.status?.conditions).toEqual([{ type: "Ready", status: "True", reason: "KubeletReady" }]);
    source.keeper.setReady(true);
    await vi.waitFor(() => expect(server.getNode("node-self")!.status?.conditions).toEqual([
      { type: "Ready", status: "True", reason: "KubeletReady" },
      expect.objectContaining({ type: "NetworkUnavailable", status: "False", reason: "WeftIsUp" }),
    ]));
    const patches = server.requests.filter((r) => r.method === "PATCH");
    expect(patches.map((p) => [p.path, p.contentType])).toEqual([
      ["/api/v1/nodes/node-self", "application/merge-patch+json"],
      ["/api/v1/nodes/node-self/status", "application/strategic-merge-patch+json"],
    ]);
    // The watch sees its own node like any other.
    await vi.waitFor(() => expect(source.snapshot().nodes).toEqual([claimed]));

    // A second claim (agent restart) changes nothing that is already right.
    await source.claimLocal(...announcing(local));
    expect(server.requests.filter((r) => r.method === "PATCH" && !r.path.endsWith("/status"))).toHaveLength(1);
  });

  it("with flannelCompat, publishes flannel's annotations and reads a flannel node's", async () => {
    const { server, source, start } = await setup({}, { flannelCompat: true });
    server.upsertNode(kubeNode("node-self", 9));
    server.upsertNode(kubeNode("node-flannel", 8, {
      annotations: {
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"0e:ff:00:00:00:08"}',
        "flannel.alpha.coreos.com/public-ip": "192.168.70.8",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
      },
    }));
    await start();
    await source.claimLocal(...announcing(local));
    expect(server.getNode("node-self")!.metadata.annotations).toMatchObject({
      "flannel.alpha.coreos.com/backend-type": "vxlan",
      "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"0e:aa:bb:cc:dd:09"}',
      "flannel.alpha.coreos.com/public-ip": "192.168.50.9",
      "flannel.alpha.coreos.com/kube-subnet-manager": "true",
      "weft.dev/public-ip": "192.168.50.9",
    });
    await vi.waitFor(() => expect(source.snapshot().nodes).toContainEqual({ name: "node-flannel", podCidrs: ["10.244.8.0/24"], publicIp: "192.168.70.8", vtepMac: "0e:ff:00:00:00:08" }));
  });

  it("refuses a pod CIDR outside the network, and honours its AbortSignal while waiting", async () => {
    const { server, source } = await setup({}, { setNetworkUnavailable: false });
    server.upsertNode(kubeNode("node-self", 9, { podCIDR: "10.1.9.0/24" }));
    await expect(source.claimLocal(...announcing(local))).rejects.toMatchObject({ code: "ERR_LOCAL_NODE", message: expect.stringContaining("outside the cluster network") });

    const waiting = source.claimLocal(...announcing({ ...local, name: "node-missing" }), AbortSignal.timeout(300));
    await expect(waiting).rejects.toMatchObject({ name: "TimeoutError" });
    expect(server.requests.some((r) => r.method === "PATCH")).toBe(false);
  });
});

describe("kube source: keeping this node's Node as claimed", () => {
  const local: LocalAnnouncement = { name: "node-self", publicIp: "192.168.50.9", vtepMac: "0e:aa:bb:cc:dd:09", backendType: "vxlan" };
  const published = { "weft.dev/public-ip": "192.168.50.9", "weft.dev/vtep-mac": "0e:aa:bb:cc:dd:09", "weft.dev/backend-type": "vxlan" };
  const networkUp = expect.objectContaining({ type: "NetworkUnavailable", status: "False", reason: "WeftIsUp" });

  /** A source that has claimed node-self and been told the agent is ready. */
  async function claimed(options: Partial<KubeSourceOptions> = {}) {
    const context = await setup({}, options);
    context.server.upsertNode(kubeNode("node-self", 9, { annotations: {} }));
    context.server.upsertNode(kubeNode("node-b", 2));
    await context.start();
    await context.source.claimLocal(...announcing(local));
    context.source.keeper.setReady(true);
    await vi.waitFor(() => expect(context.server.getNode("node-self")!.status?.conditions).toContainEqual(networkUp));
    return context;
  }

  /** Changes node-self as someone else would (kubectl edit, a second controller): a replace, same uid. */
  function edit(server: FakeKubeApiServer, change: (node: FakeNode) => void): void {
    const node = server.getNode("node-self")!;
    change(node);
    server.upsertNode(node);
  }

  // The server has a patch as soon as it took it; the keeper counts the repair when it reads the answer, a moment
  // later: hence vi.waitFor on the keeper's status after each change seen on the server.
  const patches = (server: FakeKubeApiServer, status = false) =>
    server.requests.filter((r) => r.method === "PATCH" && r.path.endsWith("/status") === status).length;

  it("puts back an annotation removed or changed by hand within a second, logs and counts the repair", async () => {
    const { server, source } = await claimed();
    expect(source.keeper.status()).toEqual({ repairs: {} });
    const before = patches(server);

    const removed = Date.now();
    edit(server, (node) => delete node.metadata.annotations!["weft.dev/vtep-mac"]);
    await vi.waitFor(() => expect(server.getNode("node-self")!.metadata.annotations).toMatchObject(published), { timeout: 1_000, interval: 20 });
    expect(Date.now() - removed).toBeLessThan(1_000);
    expect(patches(server)).toBe(before + 1);
    await vi.waitFor(() => expect(source.keeper.status()).toMatchObject({ repairs: { annotations: 1 }, lastRepair: { what: "annotations", detail: 'weft.dev/vtep-mac: missing → "0e:aa:bb:cc:dd:09"' } }));
    expect(source.keeper.status().problem).toBeUndefined();

    edit(server, (node) => (node.metadata.annotations!["weft.dev/public-ip"] = "192.168.50.99"));
    await vi.waitFor(() => expect(server.getNode("node-self")!.metadata.annotations).toMatchObject(published), { timeout: 1_000, interval: 20 });
    await vi.waitFor(() => expect(source.keeper.status()).toMatchObject({ repairs: { annotations: 2 }, lastRepair: { detail: 'weft.dev/public-ip: "192.168.50.99" → "192.168.50.9"' } }));
    // Other annotations are not ours to keep.
    edit(server, (node) => (node.metadata.annotations!["example.com/other"] = "x"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(patches(server)).toBe(before + 2);
  });

  it("sets NetworkUnavailable back to False when set to True by hand while ready, and leaves it while not ready", async () => {
    const { server, source } = await claimed();
    const setUnavailable = (status: string) => edit(server, (node) => {
      node.status!.conditions = node.status!.conditions!.map((c) => (c.type === "NetworkUnavailable" ? { ...c, status, reason: "ByHand" } : c));
    });
    setUnavailable("True");
    await vi.waitFor(() => expect(server.getNode("node-self")!.status?.conditions).toContainEqual(networkUp), { timeout: 1_000, interval: 20 });
    await vi.waitFor(() => expect(source.keeper.status()).toMatchObject({ repairs: { condition: 1 }, lastRepair: { what: "condition", detail: "NetworkUnavailable status True → False" } }));

    source.keeper.setReady(false);
    setUnavailable("True");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(server.getNode("node-self")!.status?.conditions).toContainEqual(expect.objectContaining({ type: "NetworkUnavailable", status: "True" }));
    source.keeper.setReady(true);
    await vi.waitFor(() => expect(server.getNode("node-self")!.status?.conditions).toContainEqual(networkUp), { timeout: 1_000, interval: 20 });
    await vi.waitFor(() => expect(source.keeper.status().repairs).toEqual({ condition: 2 }));
  });

  it("says its Node is gone while deleted, and publishes everything again on the re-created object", async () => {
    const { server, source } = await claimed();
    server.deleteNode("node-self");
    await vi.waitFor(() => expect(source.keeper.status().problem).toBe("this node's Node object node-self is gone (deleted, not re-created yet); the datapath is kept"));
    expect(source.snapshot().nodes.map((n) => n.name)).toEqual(["node-b"]);

    // What a kubelet registering again creates: no annotations, no NetworkUnavailable condition.
    const recreated = Date.now();
    server.upsertNode(kubeNode("node-self", 9, { annotations: {} }));
    await vi.waitFor(() => {
      const node = server.getNode("node-self")!;
      expect(node.metadata.annotations).toMatchObject(published);
      expect(node.status?.conditions).toContainEqual(networkUp);
    }, { timeout: 1_000, interval: 20 });
    expect(Date.now() - recreated).toBeLessThan(1_000);
    await vi.waitFor(() => expect(source.keeper.status()).toMatchObject({ repairs: { annotations: 1, condition: 1 } }));
    expect(source.keeper.status().problem).toBeUndefined();
    await vi.waitFor(() => expect(source.snapshot().nodes.map((n) => n.name)).toEqual(["node-b", "node-self"]));
  });

  it("says so when its Node comes back with another pod CIDR, which this agent's pods do not use", async () => {
    const { server, source } = await claimed();
    edit(server, (node) => (node.spec = { podCIDR: "10.244.77.0/24", podCIDRs: ["10.244.77.0/24"] }));
    await vi.waitFor(() => expect(source.keeper.status().problem).toBe("this node's spec.podCIDR is now 10.244.77.0/24, but this agent runs with 10.244.9.0/24: restart the agent"));
  });

  it("stops after a bounded number of patches when another writer keeps changing an annotation, says so, and repairs once it stops", async () => {
    const { server, source } = await claimed({ repairGuard: { limit: 3, windowMs: 10_000, pauseMs: 1_000 } });
    const before = patches(server);
    for (let i = 0; i < 30; i++) {
      edit(server, (node) => (node.metadata.annotations!["weft.dev/vtep-mac"] = `0e:00:00:00:01:${(i % 100).toString().padStart(2, "0")}`));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // 30 changes in ~0.8 s: 3 repairs, then a pause of 1 s.
    expect(patches(server) - before).toBeLessThanOrEqual(4);
    expect(source.keeper.status().problem).toMatch(/^another writer keeps changing this node's annotations \(weft\.dev\/vtep-mac\): not repairing it for \d+ s$/);
    // The other writer stopped: one repair after the pause, and the problem is gone.
    await vi.waitFor(() => expect(server.getNode("node-self")!.metadata.annotations).toMatchObject(published), { timeout: 3_000, interval: 50 });
    await vi.waitFor(() => expect(source.keeper.status().problem).toBeUndefined());
    expect(patches(server) - before).toBeLessThanOrEqual(5);
  });
});
