// Podman on a test node with the reference plugins (bridge + host-local + portmap from Debian's
// containernetworking-plugins): proves the harness in test/support/podman.ts, and is the template for the same
// test with weft (swap the first plugin and add the weft binary's directory to pluginDirs).
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createTestNetns, RUN_PREFIX, type TestNetns } from "../support/netns";
import { addNodeUplink, createPodmanNode, eventually, REFERENCE_PLUGIN_DIR, type PodmanNode } from "../support/podman";

const NETWORK = `${RUN_PREFIX}ref`; // prefixed: libcni's cache file names start with it (see podman.ts)
const NODE_IP = "192.0.2.10"; // the node's own address, on eth0 inside the node netns
const HOST_PORT = 18080;

describe("podman with bridge + host-local + portmap", () => {
  let netns: TestNetns;
  let node: PodmanNode;
  let dataDir: string;

  beforeAll(() => {
    netns = createTestNetns("podref");
    addNodeUplink(netns, NODE_IP);
    node = createPodmanNode({ netnsName: netns.name, pluginDirs: [REFERENCE_PLUGIN_DIR] });
    dataDir = join(node.dir, "ipam");
    node.writeConflist({
      cniVersion: "1.0.0", // the highest podman 4.3's libcni accepts
      name: NETWORK,
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          isDefaultGateway: true, // else no default route in the container, and no reply to NODE_IP
          ipam: { type: "host-local", ranges: [[{ subnet: "10.244.0.0/24" }]], dataDir },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    });
    // b answers every TCP connection on 8080 with its name; a is an idle client.
    node.run("b", ["nc", "-ll", "-p", "8080", "-e", "/bin/echo", "hello from b"], { network: NETWORK, publish: [`${HOST_PORT}:8080`] });
    node.run("a", ["sleep", "3600"], { network: NETWORK });
  });

  afterAll(() => {
    node?.close();
    netns?.remove();
  });

  test("containers get distinct addresses in the subnet, recorded by host-local", () => {
    const [a, b] = [node.ip("a"), node.ip("b")];
    expect(a).toMatch(/^10\.244\.0\.\d+$/);
    expect(b).toMatch(/^10\.244\.0\.\d+$/);
    expect(a).not.toBe(b);
    expect(readdirSync(join(dataDir, NETWORK))).toEqual(expect.arrayContaining([a, b]));
  });

  test("a container reaches another over the bridge", async () => {
    const b = node.ip("b");
    node.exec("a", ["ping", "-c", "1", "-W", "2", b]);
    const reply = await eventually(() => node.exec("a", ["nc", "-w", "2", b, "8080"]));
    expect(reply.trim()).toBe("hello from b");
  });

  test("the host port answers on the node's own address", async () => {
    const reply = await eventually(() => netns.exec(["busybox", "nc", "-w", "2", NODE_IP, String(HOST_PORT)]));
    expect(reply.trim()).toBe("hello from b");
  });

  test("podman rm releases the addresses and removes the host port", () => {
    node.rm("a");
    node.rm("b");
    expect(readdirSync(join(dataDir, NETWORK)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))).toEqual([]);
    expect(netns.exec(["nft", "list", "chain", "ip", "nat", "CNI-HOSTPORT-DNAT"])).not.toContain(`dport ${HOST_PORT}`);
  });
});
