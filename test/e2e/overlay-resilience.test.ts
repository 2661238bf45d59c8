// The overlay when things go wrong (issue 3), with real weft-agents on the file source: nodes leave and come
// back with a new VTEP MAC, agents restart (SIGTERM and SIGKILL) under pod↔pod traffic, hand-made damage is
// repaired within one resync, the node source breaks for 30 s, a node speaks flannel's wire format from a
// hand-built flannel setup, host-gw meets a node off its L2, and bad input is reported instead of programmed.
// Every check reads the kernel (`ip`/`bridge` inside the node) or the agent's /debug/state.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentState } from "../../agent/debug/state";
import { configureAsFlannel, nodeFileEntry, runAgentOnce, SimCluster, writeNodeEntries, type SimNode, type SimPod } from "../support/cluster";
import { eventually } from "../support/podman";
import {
  startEchoServer, startPing, startTcpStream, unreachablePairs, type EchoServer, type PingSummary, type StreamReport,
} from "../support/traffic";

const ECHO_PORT = 7007;

type Objects = ReturnType<SimNode["kernelObjects"]>;

function ifindex(node: SimNode, device: string): number {
  return node.ipJson<{ ifindex: number }[]>(["link", "show", device])[0]!.ifindex;
}

function programmed(state: AgentState): string[] {
  return state.peers.filter((p) => p.status === "programmed").map((p) => p.name);
}

/** TCP echo between every ordered pair of `pods`; the failures, empty when all reach each other with their own address. */
function unreachable(pods: SimPod[]): string[] {
  return unreachablePairs(pods, ECHO_PORT);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("3 nodes, vxlan, file source: churn, restarts, repairs, outages, bad input", () => {
  let cluster: SimCluster;
  let nodeFile: string;
  let agentArgs: string[];
  const servers: EchoServer[] = [];
  const pods = () => cluster.nodes.map((node) => node.pods[0]!);
  const allObjects = (): Objects[] => cluster.nodes.map((node) => node.kernelObjects());
  const restoreNodeFile = () => writeNodeEntries(nodeFile, cluster.nodes.map((node) => nodeFileEntry(node)));
  /** Waits for the cluster's normal state: every agent up, ready, with the two other nodes programmed and no source error. */
  const settled = () =>
    Promise.all(cluster.nodes.map((node) => {
      if (!node.agent || node.agent.child.exitCode !== null || node.agent.child.signalCode !== null) node.startAgent(agentArgs);
      return node.waitReady((s) => programmed(s).length === 2 && s.peers.length === 2 && s.source.error === undefined);
    }));

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "rv", nodes: 3 });
    nodeFile = path.join(cluster.dir, "nodes.json");
    restoreNodeFile();
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } });
    agentArgs = ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf];
    for (const node of cluster.nodes) node.startAgent(agentArgs);
    await settled();
    for (const node of cluster.nodes) node.addPod();
    for (const pod of pods()) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
    expect(unreachable(pods())).toEqual([]);
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("restores a route, a neighbour and an FDB entry deleted by hand within one resync, and leaves a route of its own alone", async () => {
    const node = cluster.nodes[0]!;
    const before = node.kernelObjects();
    const start = node.state();
    const mac2 = start.peers.find((p) => p.name === "node-2")!.vtepMac!;
    node.ns.exec(["ip", "route", "add", "10.99.0.0/24", "via", "192.168.90.1"]);
    try {
      node.ns.exec(["ip", "route", "del", "10.244.2.0/24"]);
      node.ns.exec(["ip", "neigh", "del", "10.244.3.0", "dev", "weft.1"]);
      node.ns.exec(["bridge", "fdb", "del", mac2, "dst", cluster.nodes[1]!.ip, "dev", "weft.1"]);
      const damaged = Date.now();
      // The resync runs every second: restored within ~3 s (two resyncs and some slack), not by chance later.
      await eventually(() => expect(node.kernelObjects()).toEqual(before), 3_000, 50);
      expect(Date.now() - damaged).toBeLessThan(3_500);

      // Exactly the three objects were put back, once each; nothing was deleted.
      const repaired = await eventually(() => {
        const s = node.state();
        expect(s.reconcile.runs).toBeGreaterThanOrEqual(start.reconcile.runs + 2);
        return s;
      }, 5_000, 200);
      const delta = Object.fromEntries(
        Object.entries(repaired.reconcile.opsApplied)
          .map(([kind, count]) => [kind, count - (start.reconcile.opsApplied[kind] ?? 0)])
          .filter(([, count]) => count !== 0),
      );
      expect(delta).toEqual({ "replace-route": 1, "replace-neighbour": 1, "replace-fdb": 1 });
      expect(repaired.reconcile.runsWithErrors).toBe(start.reconcile.runsWithErrors);

      // The route that is not weft's survived those resyncs (and two more), untouched.
      await eventually(() => expect(node.state().reconcile.runs).toBeGreaterThanOrEqual(repaired.reconcile.runs + 2), 5_000, 200);
      expect(node.ipJson(["route", "show", "10.99.0.0/24", "proto", "boot"])).toEqual([
        expect.objectContaining({ dst: "10.99.0.0/24", gateway: "192.168.90.1", dev: "eth0" }),
      ]);
      expect(unreachable(pods())).toEqual([]);
    } finally {
      node.ns.exec(["ip", "route", "del", "10.99.0.0/24"], { allowFailure: true });
    }
  });

  it("restarts an agent (SIGTERM, then SIGKILL) under pod↔pod ping and TCP without losing a packet or changing a kernel object", async () => {
    const [source, target] = [cluster.nodes[0]!, cluster.nodes[1]!];
    const before = {
      objects: allObjects(),
      vtep: ifindex(source, "weft.1"),
      bridge: ifindex(source, "cni0"),
      conflist: fs.statSync(source.conflist).mtimeMs,
      subnetFile: fs.statSync(source.subnetFile).mtimeMs,
    };
    const ping = startPing(source.pods[0]!.ns.name, target.pods[0]!.ip, { count: 200 });
    const stream = await startTcpStream(source.pods[0]!.ns.name, target.pods[0]!.ip, ECHO_PORT).catch(async (error: unknown) => {
      await ping.stop();
      throw error;
    });
    let traffic: [PingSummary, StreamReport];
    try {
      await sleep(500);
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        const previous = source.state().startedAt;
        const code = await source.stopAgent(signal);
        expect(code, `exit status after ${signal}`).toBe(signal === "SIGTERM" ? 0 : null);
        source.startAgent(agentArgs);
        const state = await source.waitReady((s) => programmed(s).length === 2);
        expect(state.startedAt).not.toBe(previous);
        // The restarted agent found everything in place: its first reconcile (and every one since) planned and
        // applied nothing, and it did not re-apply the masquerade table.
        expect(state.reconcile.runs).toBeGreaterThanOrEqual(1);
        expect(state.reconcile.lastRun?.planned).toEqual([]);
        expect(state.reconcile.opsApplied).toEqual({});
        expect(state.reconcile.runsWithErrors).toBe(0);
        expect(state.masq).toMatchObject({ inPlace: true, applied: 0 });
        expect(source.agentLog()).not.toMatch(/"msg":"Reconciled"/);
        // One run at start, then resyncs: the node list never changed, so no run says it did (the source's
        // first snapshot is the one the start-up run already took).
        expect(source.agentLog()).toMatch(/"msg":"Reconciled: nothing to do"[^\n]*"trigger":"start"/);
        expect(source.agentLog()).not.toMatch(/"trigger":"node list changed"/);
        expect(ifindex(source, "weft.1")).toBe(before.vtep);
        expect(ifindex(source, "cni0")).toBe(before.bridge);
        expect(allObjects()).toEqual(before.objects);
        await sleep(500);
      }
    } finally {
      traffic = await Promise.all([ping.stop(), stream.stop()]);
    }
    const [pinged, streamed] = traffic;
    expect(pinged.transmitted).toBeGreaterThanOrEqual(100);
    expect(pinged.lossy, "ping rounds with loss").toEqual([]);
    expect(pinged.received).toBe(pinged.transmitted);
    expect(streamed).toMatchObject({ connected: true, closed: false, error: "", outOfOrder: 0 });
    expect(streamed.sent).toBeGreaterThan(100);
    expect(streamed.received).toBe(streamed.sent);
    // Continuous: a retransmission after a lost segment alone takes 200 ms or more; a restart that touched the
    // datapath would stall the stream for seconds.
    expect(streamed.maxGapMs).toBeLessThan(1_000);
    expect(fs.statSync(source.conflist).mtimeMs).toBe(before.conflist);
    expect(fs.statSync(source.subnetFile).mtimeMs).toBe(before.subnetFile);
  }, 60_000);

  it("keeps the datapath and readiness through a 30 s source outage (garbage, missing file, empty list), then carries on", async () => {
    const before = { objects: allObjects(), vteps: cluster.nodes.map((node) => ifindex(node, "weft.1")) };
    const [from, to] = [cluster.nodes[0]!.pods[0]!, cluster.nodes[2]!.pods[0]!];
    const ping = startPing(from.ns.name, to.ip, { count: 100 });
    const stream = await startTcpStream(from.ns.name, to.ip, ECHO_PORT).catch(async (error: unknown) => {
      await ping.stop();
      throw error;
    });
    const problems: string[] = [];
    const errorsSeen = new Set<string>();
    /** Polls every node until `until`: the source error must match, and nothing else may change. */
    const hold = async (until: number, error: RegExp) => {
      let checks = 0;
      while (Date.now() < until || checks === 0) {
        checks++;
        cluster.nodes.forEach((node, i) => {
          const state = node.state();
          if (state.source.error !== undefined) errorsSeen.add(state.source.error);
          if (!error.test(state.source.error ?? "")) problems.push(`${node.name}: source error ${JSON.stringify(state.source.error)}, expected ${error}`);
          if (!state.readiness.ready) problems.push(`${node.name}: not ready: ${JSON.stringify(state.readiness)}`);
          if (!state.source.synced || programmed(state).length !== 2) problems.push(`${node.name}: peers ${JSON.stringify(state.peers.map((p) => [p.name, p.status]))}`);
          const objects = node.kernelObjects();
          if (JSON.stringify(objects) !== JSON.stringify(before.objects[i])) problems.push(`${node.name}: objects changed: ${JSON.stringify(objects)}`);
        });
        const readyz = cluster.nodes[1]!.debugGet("/readyz");
        if (readyz.status !== 200) problems.push(`node-2 /readyz ${readyz.status}: ${readyz.body}`);
        if (problems.length > 0) throw new Error(`During the outage:\n${problems.join("\n")}`);
        await sleep(300);
      }
    };
    const waitForError = (error: RegExp) =>
      eventually(() => {
        for (const node of cluster.nodes) expect(node.state().source.error).toMatch(error);
      }, 10_000, 200);

    const good = fs.readFileSync(nodeFile, "utf8");
    const started = Date.now();
    let traffic: [PingSummary, StreamReport] | undefined;
    try {
      fs.writeFileSync(nodeFile, '{"nodes": [ {"name": "node-1", "podCidrs": ');
      await waitForError(/not JSON/);
      await hold(started + 10_000, /not JSON/);
      fs.renameSync(nodeFile, `${nodeFile}.away`);
      await waitForError(/Cannot read node file .*ENOENT/);
      await hold(started + 20_000, /Cannot read node file .*ENOENT/);
      // An empty list right after an error is refused: the agents keep every node.
      writeNodeEntries(nodeFile, []);
      await waitForError(/Refusing an empty node list after an interruption; keeping 3 nodes/);
      await hold(started + 30_000, /Refusing an empty node list/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(30_000);
      // Back: the error clears and everything is as before.
      fs.rmSync(`${nodeFile}.away`, { force: true });
      writeNodeEntries(nodeFile, JSON.parse(good).nodes as Record<string, unknown>[]);
      await settled();
      expect(allObjects()).toEqual(before.objects);
      expect(cluster.nodes.map((node) => ifindex(node, "weft.1"))).toEqual(before.vteps);
    } finally {
      traffic = await Promise.all([ping.stop(), stream.stop()]);
      fs.rmSync(`${nodeFile}.away`, { force: true });
      if (!fs.existsSync(nodeFile) || fs.readFileSync(nodeFile, "utf8") !== good) writeNodeEntries(nodeFile, JSON.parse(good).nodes as Record<string, unknown>[]);
    }
    const [pinged, streamed] = traffic;
    expect(pinged.lossy, "ping rounds with loss").toEqual([]);
    expect(pinged.received).toBe(pinged.transmitted);
    expect(pinged.transmitted).toBeGreaterThanOrEqual(500);
    expect(streamed).toMatchObject({ connected: true, closed: false, error: "", outOfOrder: 0 });
    expect(streamed.received).toBe(streamed.sent);
    expect(unreachable(pods())).toEqual([]);
    // The three failures were each reported, and nothing else.
    const kinds = new Set([...errorsSeen].map((e) => e.replace(/^(Invalid node file: not JSON|Cannot read node file|Refusing an empty node list).*$/, "$1")));
    expect([...kinds].sort()).toEqual([
      "Cannot read node file", "Invalid node file: not JSON", "Refusing an empty node list",
    ]);
  }, 90_000);

  it("reports bad node entries as rejected or skipped, with their reason, and keeps the other nodes working", async () => {
    const before = allObjects();
    const bad: Record<string, unknown>[] = [
      { name: "bad-cidr", podCidrs: ["10.244.300.0/24"], publicIp: "192.168.90.21" },
      { name: "outside", podCidrs: ["10.99.5.0/24"], publicIp: "192.168.90.22" },
      { name: "overlapping", podCidrs: ["10.244.2.128/25"], publicIp: "192.168.90.23" },
      { name: "bad-mac", podCidrs: ["10.244.24.0/24"], publicIp: "192.168.90.24", vtepMac: "02:zz:00:00:00:01" },
      { name: "multicast-mac", podCidrs: ["10.244.25.0/24"], publicIp: "192.168.90.25", vtepMac: "01:00:5e:00:00:01" },
      { name: "bad-ip", podCidrs: ["10.244.26.0/24"], publicIp: "300.1.2.3" },
      { name: "same-ip", podCidrs: ["10.244.27.0/24"], publicIp: "192.168.90.12" },
    ];
    const expected: [string, string, RegExp][] = [
      ["bad-cidr", "rejected", /^pod CIDR "10\.244\.300\.0\/24" is not a CIDR$/],
      ["bad-ip", "rejected", /^public IP "300\.1\.2\.3" is not a unicast IP address$/],
      ["bad-mac", "rejected", /^VTEP MAC "02:zz:00:00:00:01" is not a unicast MAC address$/],
      ["multicast-mac", "rejected", /^VTEP MAC "01:00:5e:00:00:01" is not a unicast MAC address$/],
      ["outside", "rejected", /^pod CIDR 10\.99\.5\.0\/24 is outside the cluster network 10\.244\.0\.0\/16$/],
      ["overlapping", "rejected", /^pod CIDR 10\.244\.2\.128\/25 overlaps node node-2's 10\.244\.2\.0\/24$/],
      ["same-ip", "skipped", /^public IP 192\.168\.90\.12 is also node node-2's$/],
    ];
    try {
      writeNodeEntries(nodeFile, [...cluster.nodes.map((node) => nodeFileEntry(node)), ...bad]);
      for (const node of cluster.nodes) {
        const state = await eventually(() => {
          const s = node.state();
          expect(s.source).toMatchObject({ synced: true, nodes: 4, rejected: 6 });
          return s;
        }, 10_000, 200);
        const others = cluster.nodes.filter((n) => n !== node).map((n) => n.name);
        expect(programmed(state)).toEqual(others);
        for (const [name, status, reason] of expected) {
          const peer = state.peers.find((p) => p.name === name);
          expect(peer, `${node.name}: ${name}`).toMatchObject({ status, reason: expect.stringMatching(reason), objects: { routes: [], neighbours: [], fdb: [] } });
        }
        expect(state.readiness.ready).toBe(true);
      }
      // A few resyncs later still nothing of theirs is in any kernel, and the three real nodes talk.
      const runs = cluster.nodes[0]!.state().reconcile.runs;
      await eventually(() => expect(cluster.nodes[0]!.state().reconcile.runs).toBeGreaterThanOrEqual(runs + 2), 5_000, 200);
      expect(allObjects()).toEqual(before);
      expect(unreachable(pods())).toEqual([]);
    } finally {
      restoreNodeFile();
    }
    await settled();
    expect(allObjects()).toEqual(before);
  });

  it("removes a departed node's route, neighbour and FDB entry everywhere, and programs it again, once, with its new VTEP MAC", async () => {
    const [a, b, c] = cluster.nodes as [SimNode, SimNode, SimNode];
    const before = allObjects();
    const oldMac = c.state().node.vtep!.mac;
    const ofC = (line: string) => line.includes("10.244.3.0") || line.includes(c.ip);
    for (const objects of before.slice(0, 2)) {
      expect(objects.routes.filter(ofC)).toHaveLength(1);
      expect(objects.neighbours.filter(ofC)).toEqual([`10.244.3.0 ${oldMac} weft.1`]);
      expect(objects.fdb.filter(ofC)).toEqual([`${oldMac} ${c.ip} weft.1`]);
    }
    const withoutC = (objects: Objects): Objects => ({
      routes: objects.routes.filter((l) => !ofC(l)), neighbours: objects.neighbours.filter((l) => !ofC(l)), fdb: objects.fdb.filter((l) => !ofC(l)),
    });

    // Removed from the node list: gone from every other node's kernel and state.
    writeNodeEntries(nodeFile, [nodeFileEntry(a), nodeFileEntry(b)]);
    for (const [i, node] of [a, b].entries()) {
      await eventually(() => expect(node.kernelObjects()).toEqual(withoutC(before[i]!)), 10_000, 100);
      expect(node.state().peers.map((p) => p.name)).toEqual([i === 0 ? "node-2" : "node-1"]);
    }

    // Re-created: a new machine under the same name, with a new VTEP MAC given in the node file.
    const newMac = "02:3e:00:00:00:03";
    expect(newMac).not.toBe(oldMac);
    await c.stopAgent("SIGTERM");
    c.ns.exec(["ip", "link", "del", "weft.1"]);
    fs.rmSync(path.join(c.dir, "state"), { recursive: true, force: true });
    writeNodeEntries(nodeFile, [nodeFileEntry(a), nodeFileEntry(b), nodeFileEntry(c, { vtepMac: newMac })]);
    c.startAgent(agentArgs);
    const state = await c.waitReady((s) => programmed(s).length === 2);
    expect(state.node.vtep).toMatchObject({ mac: newMac, macFrom: "node source" });
    expect(c.ipJson<{ address: string }[]>(["link", "show", "weft.1"])[0]!.address).toBe(newMac);
    for (const [i, node] of [a, b].entries()) {
      await eventually(() => {
        const objects = node.kernelObjects();
        expect(objects.fdb.filter(ofC)).toEqual([`${newMac} ${c.ip} weft.1`]);
        expect(objects.neighbours.filter(ofC)).toEqual([`10.244.3.0 ${newMac} weft.1`]);
        expect(objects.routes.filter(ofC)).toEqual(before[i]!.routes.filter(ofC));
        expect(withoutC(objects)).toEqual(withoutC(before[i]!));
      }, 10_000, 100);
    }
    expect(await eventually(() => {
      const failures = unreachable(pods());
      expect(failures).toEqual([]);
      return failures;
    }, 10_000, 300)).toEqual([]);

    // The MAC changes again while the node stays listed: the entry of the old MAC goes, no second one remains,
    // and node-3's running agent moves its own device to the new MAC in place (not recreated, no restart).
    const newerMac = "02:3e:00:00:00:33";
    const vtep = ifindex(c, "weft.1");
    writeNodeEntries(nodeFile, [nodeFileEntry(a), nodeFileEntry(b), nodeFileEntry(c, { vtepMac: newerMac })]);
    for (const node of [a, b]) {
      await eventually(() => {
        const objects = node.kernelObjects();
        expect(objects.fdb.filter(ofC)).toEqual([`${newerMac} ${c.ip} weft.1`]);
        expect(objects.neighbours.filter(ofC)).toEqual([`10.244.3.0 ${newerMac} weft.1`]);
      }, 10_000, 100);
    }
    await eventually(() => expect(c.ipJson<{ address: string }[]>(["link", "show", "weft.1"])[0]!.address).toBe(newerMac), 10_000, 100);
    expect(ifindex(c, "weft.1")).toBe(vtep);
    expect(c.state().node.vtep?.mac).toBe(newerMac);
    await eventually(() => expect(unreachable(pods())).toEqual([]), 10_000, 300);
  }, 90_000);

  it("applies a node list change from the difference alone, and reads the kernel at once when that fails", async () => {
    const [a, , c] = cluster.nodes as [SimNode, SimNode, SimNode];
    const listed = cluster.nodes.map((node) => nodeFileEntry(node, node === c ? { vtepMac: c.state().node.vtep!.mac } : {}));
    // No resync on node-1 for a minute: what happens next is the node list changes' doing.
    await a.stopAgent("SIGTERM");
    a.startAgent([...agentArgs, "--resync-interval", "60s"]);
    await a.waitReady((s) => programmed(s).length === 2);
    const whole = a.kernelObjects();

    writeNodeEntries(nodeFile, listed.slice(0, 2));
    await eventually(() => expect(a.kernelObjects().routes).toHaveLength(whole.routes.length - 1), 10_000, 100);
    expect(a.state().reconcile.lastRun).toMatchObject({ trigger: "node list changed", mode: "incremental", failed: 0 });
    const fullRuns = a.state().reconcile.fullRuns;

    // The VTEP deleted by hand takes every object on it along. The next change's incremental run fails on the
    // missing device, and a full run follows at once (not at the resync, a minute away) and puts it all back.
    a.ns.exec(["ip", "link", "del", "weft.1"]);
    writeNodeEntries(nodeFile, listed);
    await eventually(() => expect(a.kernelObjects()).toEqual(whole), 10_000, 100);
    expect(a.agentLog()).toContain("An incremental reconcile failed; observing the kernel");
    expect(a.state().reconcile).toMatchObject({ fullRuns: fullRuns + 1, lastRun: { trigger: "node list changed", mode: "full", failed: 0 } });
    await eventually(() => expect(unreachable(pods())).toEqual([]), 10_000, 300);

    await a.stopAgent("SIGTERM");
    a.startAgent(agentArgs);
    await settled();
  }, 90_000);
});

describe("2 nodes, vxlan: weft-agent and a node configured by hand exactly as flannel does", () => {
  let cluster: SimCluster;
  let weftNode: SimNode;
  let flannelNode: SimNode;
  let flannelMac: string;
  let weftMac: string;
  const servers: EchoServer[] = [];

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "rf", nodes: 2 });
    [weftNode, flannelNode] = cluster.nodes as [SimNode, SimNode];
    const flannel = configureAsFlannel(flannelNode, "10.244.2.0/24");
    flannelMac = flannel.vtepMac;
    const nodeFile = path.join(cluster.dir, "nodes.json");
    writeNodeEntries(nodeFile, [nodeFileEntry(weftNode), nodeFileEntry(flannelNode, { vtepMac: flannelMac })]);
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } });
    weftNode.startAgent(["--source", "file", "--node-file", nodeFile, "--net-conf", netConf]);
    const state = await weftNode.waitReady((s) => programmed(s).includes("node-2"));
    weftMac = state.node.vtep!.mac;
    // What flannel on node-2 does with node-1's annotations (backend-data VtepMAC, public-ip).
    flannel.addPeer({ podCidr: "10.244.1.0/24", publicIp: weftNode.ip, vtepMac: weftMac });
    weftNode.addPod();
    flannel.addPod();
    for (const node of cluster.nodes) servers.push(await startEchoServer(node.pods[0]!.ns.name, ECHO_PORT));
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("programs the flannel node as flannel programs a peer, on a VTEP with flannel.1's parameters", () => {
    expect(weftNode.kernelObjects()).toEqual({
      routes: ["10.244.2.0/24 via 10.244.2.0 dev weft.1"],
      neighbours: [`10.244.2.0 ${flannelMac} weft.1`],
      fdb: [`${flannelMac} ${flannelNode.ip} weft.1`],
    });
    type Vxlan = { mtu: number; linkinfo: { info_data: { id: number; port: number; local: string; learning?: boolean } } };
    const weft = weftNode.ipJson<Vxlan[]>(["-d", "link", "show", "weft.1"])[0]!;
    const flannel = flannelNode.ipJson<Vxlan[]>(["-d", "link", "show", "flannel.1"])[0]!;
    expect(weft.mtu).toBe(flannel.mtu);
    expect(weft.linkinfo.info_data).toMatchObject({ id: 1, port: 8472, local: weftNode.ip, learning: false });
    expect(flannel.linkinfo.info_data).toMatchObject({ id: 1, port: 8472, local: flannelNode.ip, learning: false });
    expect(weftNode.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(["-4", "addr", "show", "weft.1"])[0]!.addr_info).toEqual([
      expect.objectContaining({ local: "10.244.1.0", prefixlen: 32 }),
    ]);
  });

  it("carries TCP both ways between a weft pod and a flannel pod, with the pods' own addresses", async () => {
    const both = [weftNode.pods[0]!, flannelNode.pods[0]!];
    expect(await eventually(() => {
      const failures = unreachable(both);
      expect(failures).toEqual([]);
      return failures;
    }, 5_000, 300)).toEqual([]);
  });
});

describe("2 nodes, host-gw: a node that is not on the same L2", () => {
  let cluster: SimCluster;
  const servers: EchoServer[] = [];
  const far = { name: "node-far", podCidrs: ["10.244.9.0/24"], publicIp: "10.77.0.5" };

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "rh", nodes: 2 });
    const nodeFile = path.join(cluster.dir, "nodes.json");
    writeNodeEntries(nodeFile, [...cluster.nodes.map((node) => nodeFileEntry(node)), far]);
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "host-gw" } });
    for (const node of cluster.nodes) node.startAgent(["--source", "file", "--node-file", nodeFile, "--net-conf", netConf]);
    await Promise.all(cluster.nodes.map((node) => node.waitReady((s) => programmed(s).length === 1 && s.peers.length === 2)));
    for (const node of cluster.nodes) node.addPod();
    for (const node of cluster.nodes) servers.push(await startEchoServer(node.pods[0]!.ns.name, ECHO_PORT));
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("skips the node with the reason in /debug/state and routes nothing to it", () => {
    for (const node of cluster.nodes) {
      const state = node.state();
      const peer = state.peers.find((p) => p.name === "node-far");
      expect(peer).toMatchObject({
        status: "skipped",
        reason: expect.stringMatching(/^public IP 10\.77\.0\.5 is not on a subnet of eth0 \(192\.168\.90\.0\/24[,)].*: host-gw needs all nodes on one L2 network$/),
        objects: { routes: [], neighbours: [], fdb: [] },
      });
      expect(node.ipJson(["route", "show", "10.244.9.0/24"])).toEqual([]);
      const other = cluster.nodes.find((n) => n !== node)!;
      expect(node.kernelObjects().routes).toEqual([`10.244.${other.index}.0/24 via ${other.ip} dev eth0`]);
      expect(state.readiness.ready).toBe(true);
    }
  });

  it("keeps the other nodes' pods talking", () => {
    expect(unreachable(cluster.nodes.map((node) => node.pods[0]!))).toEqual([]);
  });
});

describe("weft-agent refuses a malformed net-conf", () => {
  let cluster: SimCluster;
  let node: SimNode;
  let nodeFile: string;

  beforeAll(() => {
    cluster = SimCluster.create({ label: "rn", nodes: 1 });
    node = cluster.nodes[0]!;
    nodeFile = path.join(cluster.dir, "nodes.json");
    writeNodeEntries(nodeFile, [nodeFileEntry(node)]);
  });

  afterAll(async () => {
    await cluster?.close();
  });

  const cases: [string, Record<string, unknown>, string][] = [
    ["SubnetLen equal to the network's prefix", { Network: "10.244.0.0/16", SubnetLen: 16 }, "SubnetLen"],
    ["SubnetLen shorter than the network's prefix", { Network: "10.244.0.0/16", SubnetLen: 8 }, "SubnetLen"],
    ["a Network with host bits set", { Network: "10.244.1.0/16", SubnetLen: 24 }, "Network"],
    ["an unknown backend", { Network: "10.244.0.0/16", Backend: { Type: "udp" } }, "Backend.Type"],
    ["a VNI above 2^24 - 1", { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 16_777_216 } }, "Backend.VNI"],
    ["a negative VNI", { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: -1 } }, "Backend.VNI"],
  ];
  for (const [what, conf, field] of cases) {
    it(`exits with status 2 and one line naming ${field} for ${what}, creating nothing`, () => {
      const netConf = cluster.writeNetConf(conf, path.join(cluster.dir, `net-conf-${field}.json`));
      const run = runAgentOnce(node, ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf]);
      expect(run.status, run.stderr).toBe(2);
      expect(run.stdout).toBe("");
      const lines = run.stderr.split("\n").filter((line) => line !== "");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^weft-agent: .*Invalid network config: ${field.replace(".", "\\.")} `));
      expect(node.ipJson(["link", "show", "type", "vxlan"])).toEqual([]);
      expect(node.ipJson(["link", "show", "type", "bridge"])).toEqual([]);
      expect(node.ns.exec(["nft", "list", "tables"])).not.toMatch(/weft/);
      expect(fs.readdirSync(node.dir)).toEqual([]);
    });
  }
});
