// Three simulated nodes running the real weft-agent on the file source, pods made by the real weft binary from
// the conflist the agent wrote: the overlay (vxlan, then host-gw) carries pod↔pod TCP across nodes with pod
// source addresses, pods reach an external host masqueraded to their node's IP, and the debug endpoint,
// `weft-agent status` and /metrics tell the truth about it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXTERNAL_IP, SimCluster } from "../support/cluster";
import { eventually } from "../support/podman";
import { startEchoServer, startWhoamiServer, tcpEcho, tcpWhoami, type EchoServer } from "../support/traffic";

const ECHO_PORT = 7007;
const WHOAMI_PORT = 7008;

for (const backend of ["vxlan", "host-gw"] as const) {
  describe(`3 nodes, ${backend}, file source`, () => {
    let cluster: SimCluster;
    const servers: EchoServer[] = [];

    beforeAll(async () => {
      cluster = SimCluster.create({ label: backend === "vxlan" ? "fx" : "fh", nodes: 3 });
      const nodeFile = cluster.writeNodeFile();
      const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: backend } });
      await cluster.startAgents(() => ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf], { podsPerNode: 2 });
      for (const node of cluster.nodes) for (const pod of node.pods) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
      servers.push(await startWhoamiServer(cluster.external.name, WHOAMI_PORT));
    }, 120_000);

    afterAll(async () => {
      for (const server of servers) server.stop();
      await cluster?.close();
    });

    it("gives every pod an address from its node's subnet", () => {
      for (const node of cluster.nodes) {
        for (const pod of node.pods) expect(pod.ip).toMatch(new RegExp(`^10\\.244\\.${node.index}\\.\\d+$`));
      }
    });

    it("carries TCP from every pod to every other pod, keeping the pod's source address", () => {
      const pods = cluster.nodes.flatMap((node) => node.pods.map((pod) => ({ node: node.name, pod })));
      const failures: string[] = [];
      for (const from of pods) {
        for (const to of pods) {
          if (from === to) continue;
          const result = tcpEcho(from.pod.ns.name, to.pod.ip, ECHO_PORT);
          if (!result.ok) failures.push(`${from.node}/${from.pod.ip} → ${to.node}/${to.pod.ip}: ${result.error}`);
          else if (result.source !== from.pod.ip) failures.push(`${from.pod.ip} → ${to.pod.ip}: source seen as ${result.source}`);
        }
      }
      expect(failures).toEqual([]);
      expect(pods.length * (pods.length - 1)).toBe(30);
    });

    it("masquerades pods to the node's IP towards a host outside the cluster", () => {
      for (const node of cluster.nodes) {
        const result = tcpWhoami(node.pods[0]!.ns.name, EXTERNAL_IP, WHOAMI_PORT);
        expect(result, result.error).toMatchObject({ ok: true, seenAs: node.ip });
      }
    });

    it("programs per remote node exactly the objects of the backend, marked as weft's", () => {
      const node = cluster.nodes[0]!;
      const objects = node.kernelObjects();
      if (backend === "vxlan") {
        expect(objects.routes).toEqual(["10.244.2.0/24 via 10.244.2.0 dev weft.1", "10.244.3.0/24 via 10.244.3.0 dev weft.1"]);
        expect(objects.neighbours).toHaveLength(2);
        expect(objects.fdb.map((f) => f.split(" ")[1]).sort()).toEqual([cluster.nodes[1]!.ip, cluster.nodes[2]!.ip]);
        const vtep = node.ipJson<{ mtu: number; linkinfo: { info_data: { id: number; port: number; learning?: boolean } } }[]>(["-d", "link", "show", "weft.1"])[0]!;
        expect(vtep.mtu).toBe(1450);
        expect(vtep.linkinfo.info_data).toMatchObject({ id: 1, port: 8472 });
      } else {
        expect(objects.routes).toEqual([`10.244.2.0/24 via ${cluster.nodes[1]!.ip} dev eth0`, `10.244.3.0/24 via ${cluster.nodes[2]!.ip} dev eth0`]);
        expect(objects.neighbours).toEqual([]);
        expect(node.ipJson(["link", "show", "type", "vxlan"])).toEqual([]);
      }
    });

    it("reports every peer, its objects and (vxlan) overlay probe results in /debug/state and status", async () => {
      const node = cluster.nodes[0]!;
      const state = await eventually(() => {
        const s = node.state();
        if (backend === "vxlan") {
          for (const peer of s.peers) if (!(peer.probes[0]?.received ?? 0)) throw new Error(`no probe reply from ${peer.name} yet`);
        }
        return s;
      }, 15_000, 300);
      expect(state.readiness).toEqual({ ready: true, sourceSynced: true, overlay: true, masq: true, cniConfig: true, localRecord: true });
      expect(state.node).toMatchObject({ name: "node-1", podCidrs: ["10.244.1.0/24"], publicIp: cluster.nodes[0]!.ip, publicIpFrom: "node address" });
      expect(state.peers.map((p) => [p.name, p.status])).toEqual([["node-2", "programmed"], ["node-3", "programmed"]]);
      expect(state.masq).toMatchObject({ enabled: true, inPlace: true });
      if (backend === "vxlan") {
        for (const peer of state.peers) expect(peer.probes[0]!.rttMs).toBeGreaterThan(0);
      }
      const status = node.statusText();
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/PEER\s+STATUS/);
      expect(status.stdout).toMatch(/node-2\s+programmed\s+10\.244\.2\.0\/24/);
    });

    it("serves Prometheus metrics", () => {
      const node = cluster.nodes[1]!;
      const text = node.ns.exec([process.execPath, "-e", "fetch('http://127.0.0.1:9476/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]);
      expect(text).toMatch(/^weft_ready 1$/m);
      expect(text).toMatch(/^weft_nodes_known\{status="programmed"\} 2$/m);
      expect(text).toMatch(/^weft_reconcile_runs_total \d+$/m);
      expect(text).toMatch(/^weft_reconcile_duration_seconds_count \d+$/m);
      expect(text).toMatch(/^weft_objects_programmed\{kind="route"\} 2$/m);
      if (backend === "vxlan") expect(text).toMatch(/^weft_probe_loss_ratio\{node="node-1",address="10\.244\.1\.0"\} /m);
    });
  });
}
