// A real runtime: podman (CNI backend) runs busybox containers on a weft network, with podman's own CNI paths as
// on a node: the conflist in /etc/cni/net.d, dist/weft copied into /opt/cni/bin (under a name of this run, so
// a real install is never replaced), portmap found in the reference plugins' dir. The conflist is weft then
// portmap, as the agent writes it.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { WEFT_BINARY } from "../support/global-setup";
import { createTestNetns, RUN_PREFIX, type TestNetns } from "../support/netns";
import { addNodeUplink, createPodmanNode, eventually, installSystemPlugin, SYSTEM_CNI_CONF_DIR, type PodmanNode } from "../support/podman";

const NETWORK = `${RUN_PREFIX}weft`;
const NODE_IP = "192.0.2.20";
const HOST_PORT = 18081;

describe("podman with weft + portmap", () => {
  let netns: TestNetns;
  let node: PodmanNode;
  let dataDir: string;
  let plugin: ReturnType<typeof installSystemPlugin> | undefined;

  beforeAll(() => {
    netns = createTestNetns("podweft");
    addNodeUplink(netns, NODE_IP);
    plugin = installSystemPlugin(WEFT_BINARY, "weft");
    node = createPodmanNode({ netnsName: netns.name, systemCniPaths: true });
    dataDir = join(node.dir, "ipam");
    const conflist = node.writeConflist({
      cniVersion: "1.0.0",
      name: NETWORK,
      plugins: [
        {
          type: plugin.type,
          capabilities: { ips: true },
          bridge: "cni0",
          isDefaultGateway: true,
          ipam: { ranges: [[{ subnet: "10.244.1.0/24" }]], dataDir },
        },
        { type: "portmap", capabilities: { portMappings: true }, snat: true },
      ],
    });
    expect(conflist).toBe(join(SYSTEM_CNI_CONF_DIR, `${NETWORK}.conflist`));
    node.run("b", ["nc", "-ll", "-p", "8080", "-e", "/bin/echo", "hello from b"], { network: NETWORK, publish: [`${HOST_PORT}:8080`] });
    node.run("a", ["sleep", "3600"], { network: NETWORK });
  });

  afterAll(() => {
    node?.close();
    netns?.remove();
    plugin?.remove();
  });

  test("containers get distinct addresses from weft's IPAM", () => {
    const [a, b] = [node.ip("a"), node.ip("b")];
    expect(a).toMatch(/^10\.244\.1\.\d+$/);
    expect(b).toMatch(/^10\.244\.1\.\d+$/);
    expect(a).not.toBe(b);
    expect(readdirSync(join(dataDir, NETWORK))).toEqual(expect.arrayContaining([a, b]));
  });

  test("a container reaches another over TCP", async () => {
    const b = node.ip("b");
    const reply = await eventually(() => node.exec("a", ["nc", "-w", "2", b, "8080"]));
    expect(reply.trim()).toBe("hello from b");
  });

  test("the host port (chained portmap) answers on the node's own address", async () => {
    const reply = await eventually(() => netns.exec(["busybox", "nc", "-w", "2", NODE_IP, String(HOST_PORT)]));
    expect(reply.trim()).toBe("hello from b");
  });

  test("podman run --ip gives the container that address (the ips capability)", () => {
    node.run("c", ["sleep", "3600"], { network: NETWORK, podmanArgs: ["--ip", "10.244.1.77"] });
    expect(node.ip("c")).toBe("10.244.1.77");
    expect(readdirSync(join(dataDir, NETWORK))).toContain("10.244.1.77");
  });

  test("podman rm releases the addresses and the host veths", () => {
    node.rm("a");
    node.rm("b");
    node.rm("c");
    expect(readdirSync(join(dataDir, NETWORK)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))).toEqual([]);
    expect(netns.exec(["ip", "-o", "link", "show", "type", "veth"])).not.toMatch(/veth[0-9a-f]{8}/);
  });
});
