// manifests/weft.yaml against the Kubernetes API schemas and against the agent it runs.
//
// Schemas: every document is validated with kubernetes-models (JSON schemas generated from Kubernetes' OpenAPI:
// types, required fields, enums, formats) and checked for unknown fields against @kubernetes/client-node's
// models (generated from the same OpenAPI), since the JSON schemas allow extra properties and a misspelled
// field is the most common manifest error (the API server drops it silently). Both packages work offline.
//
// The agent: the DaemonSet's arguments are parsed by agent/flags.ts itself, so an unknown or misplaced flag
// fails here; the paths the agent writes resolve to host paths through the mounts; RBAC grants exactly the
// API calls the kube source makes; the probes point at the debug endpoint; the image tag, the Dockerfile's
// VERSION and package.json agree.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import type { V1ClusterRole, V1ClusterRoleBinding, V1ConfigMap, V1Container, V1DaemonSet, V1Namespace, V1ServiceAccount } from "@kubernetes/client-node";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { ClusterRole, ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Namespace, ServiceAccount } from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { COMMANDS, FLAGS, parseArgs, type Command, type ParsedArgs } from "../../agent/flags";
import { parseNetworkConfig } from "../../agent/network-config";

const root = fileURLToPath(new URL("../..", import.meta.url));
const MANIFEST = path.join(root, "manifests/weft.yaml");
const manifestText = fs.readFileSync(MANIFEST, "utf8");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };

type Json = Record<string, unknown>;
type Resource = Json & { apiVersion: string; kind: string; metadata?: { name?: string; namespace?: string } };

// ---- schema validation ----------------------------------------------------------------------------------------

/** The kinds the manifest may contain, each with its kubernetes-models class (validate() runs its JSON schema). */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "apps/v1/DaemonSet": DaemonSet,
};

interface AttributeType {
  baseName: string;
  type: string;
}
const clientModels = k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeType[] } | undefined>;
const SCALARS = new Set(["string", "number", "boolean", "Date", "any", "object", "IntOrString"]);

/** Fields that the OpenAPI model of `type` (a client-node model name such as "V1DaemonSet") does not have. */
function unknownFields(value: unknown, type: string, at: string, problems: string[]): void {
  if (value === null || value === undefined || SCALARS.has(type)) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((item, i) => unknownFields(item, array[1]!, `${at}[${i}]`, problems));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === "object") for (const [key, item] of Object.entries(value)) unknownFields(item, map[1]!, `${at}.${key}`, problems);
    return;
  }
  const attributes = clientModels[type]?.getAttributeTypeMap?.();
  if (!attributes) throw new Error(`No OpenAPI model ${type} in @kubernetes/client-node (at ${at})`);
  if (typeof value !== "object" || Array.isArray(value)) return; // a type error: the JSON schema reports it
  for (const [key, item] of Object.entries(value)) {
    const attribute = attributes.find((a) => a.baseName === key);
    if (!attribute) problems.push(`${at}.${key}: unknown field (not in ${type})`);
    else unknownFields(item, attribute.type, `${at}.${key}`, problems);
  }
}

/** Every YAML, schema and unknown-field problem of a multi-document manifest; empty when it is valid. */
function validateManifest(text: string): { resources: Resource[]; problems: string[] } {
  const problems: string[] = [];
  const resources: Resource[] = [];
  parseAllDocuments(text).forEach((doc, index) => {
    const label = `document ${index + 1}`;
    if ("errors" in doc && doc.errors.length > 0) {
      problems.push(...doc.errors.map((e) => `${label}: YAML: ${e.message}`));
      return;
    }
    const value = doc.toJS() as unknown;
    if (value === null) return; // an empty document (a trailing ---)
    if (typeof value !== "object" || Array.isArray(value)) {
      problems.push(`${label}: not a Kubernetes object`);
      return;
    }
    const resource = value as Resource;
    const name = `${label} (${resource.kind}/${resource.metadata?.name})`;
    const Model = MODELS[`${resource.apiVersion}/${resource.kind}`];
    if (!Model) {
      problems.push(`${name}: unexpected apiVersion/kind ${resource.apiVersion}/${resource.kind}`);
      return;
    }
    try {
      new Model(structuredClone(resource) as never).validate();
    } catch (error) {
      problems.push(`${name}: schema: ${(error as Error).message}`);
    }
    const version = resource.apiVersion.split("/").pop()!;
    unknownFields(resource, `${version[0]!.toUpperCase()}${version.slice(1)}${resource.kind}`, name, problems);
    resources.push(resource);
  });
  return { resources, problems };
}

const { resources, problems } = validateManifest(manifestText);

function only<T>(kind: string): T {
  const found = resources.filter((r) => r.kind === kind);
  expect(found, `exactly one ${kind} in manifests/weft.yaml`).toHaveLength(1);
  return found[0] as T;
}

describe("manifests/weft.yaml against the Kubernetes schemas", () => {
  it("parses into the six expected objects and every one is valid", () => {
    expect(problems).toEqual([]);
    expect(resources.map((r) => r.kind)).toEqual(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]);
  });

  // The validator must catch real mistakes, or the test above proves nothing.
  const broken: [string, (text: string) => string, RegExp][] = [
    ["a wrong type (a string where an integer goes)", (t) => t.replace("terminationGracePeriodSeconds: 30", 'terminationGracePeriodSeconds: "30s"'), /terminationGracePeriodSeconds must be integer/],
    ["a missing required field (the DaemonSet's selector)", (t) => t.replace(/ {2}selector:\n {4}matchLabels:\n {6}app.kubernetes.io\/name: weft\n/, ""), /data\/spec must have required property selector/],
    ["a value outside an enum (toleration operator)", (t) => t.replace("- operator: Exists", "- operator: Exist"), /operator must be equal to one of the allowed values/],
    ["a misspelled field", (t) => t.replace("hostNetwork: true", "hostNetwrok: true"), /\.spec\.template\.spec\.hostNetwrok: unknown field \(not in V1PodSpec\)/],
    ["a field at the wrong level", (t) => t.replace("          readOnlyRootFilesystem: true\n            capabilities:\n              drop: [ALL]\n              add:", "          readOnlyRootFilesystem: true\n            add: [NET_ADMIN]\n            capabilities:\n              drop: [ALL]\n              add:"), /securityContext\.add: unknown field \(not in V1SecurityContext\)/],
    ["a duplicate key", (t) => t.replace("      hostNetwork: true\n", "      hostNetwork: true\n      hostNetwork: false\n"), /YAML: Map keys must be unique/],
    ["an unknown kind", (t) => t.replace("kind: ServiceAccount", "kind: ServiceAcount"), /unexpected apiVersion\/kind v1\/ServiceAcount/],
  ];
  it.each(broken)("rejects a copy with %s", (_name, breakIt, expected) => {
    const text = breakIt(manifestText);
    expect(text, "the deliberate break applied").not.toBe(manifestText);
    const result = validateManifest(text);
    expect(result.problems.join("\n")).toMatch(expected);
  });
});

// ---- the manifest against the agent ---------------------------------------------------------------------------

const namespace = only<V1Namespace>("Namespace");
const serviceAccount = only<V1ServiceAccount>("ServiceAccount");
const clusterRole = only<V1ClusterRole>("ClusterRole");
const binding = only<V1ClusterRoleBinding>("ClusterRoleBinding");
const configMap = only<V1ConfigMap>("ConfigMap");
const daemonSet = only<V1DaemonSet>("DaemonSet");
const podSpec = daemonSet.spec!.template.spec!;
const installCni = podSpec.initContainers?.find((c) => c.name === "install-cni");
const agent = podSpec.containers.find((c) => c.name === "weft-agent");

const FIELD_REF_SAMPLES: Record<string, string> = { "spec.nodeName": "node-1" };

/** The container's command line as agent/flags.ts parses it, with the container's environment. */
function agentArgs(container: V1Container | undefined): ParsedArgs {
  expect(container?.command, "the image's ENTRYPOINT (weft-agent) runs, not another command").toBeUndefined();
  const env: Record<string, string> = {};
  for (const variable of container?.env ?? []) {
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    env[variable.name] = variable.value ?? (fieldPath === undefined ? "" : FIELD_REF_SAMPLES[fieldPath]!);
  }
  return parseArgs(container?.args ?? [], env);
}

/** The host path a container path lands on through the container's hostPath mounts; undefined if none. */
function hostPathOf(container: V1Container, containerPath: string): { hostPath: string; readOnly: boolean } | undefined {
  const mounts = (container.volumeMounts ?? [])
    .filter((m) => containerPath === m.mountPath || containerPath.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length);
  const mount = mounts[0];
  const volume = podSpec.volumes?.find((v) => v.name === mount?.name);
  if (!mount || !volume?.hostPath) return undefined;
  return { hostPath: path.posix.join(volume.hostPath.path, path.posix.relative(mount.mountPath, containerPath)), readOnly: mount.readOnly === true };
}

function flagValue(args: ParsedArgs, name: string): string {
  const value = args.values[name];
  expect(typeof value, `--${name} resolves to a string`).toBe("string");
  return value as string;
}

describe("the DaemonSet runs the agent it was written for", () => {
  it("passes only flags that agent/flags.ts has for each subcommand", () => {
    expect(installCni, "an install-cni initContainer").toBeDefined();
    expect(agent, "a weft-agent container").toBeDefined();
    const cases: [V1Container, Command][] = [
      [installCni!, "install-cni"],
      [agent!, "run"],
    ];
    for (const [container, command] of cases) {
      const args = container.args ?? [];
      expect(args[0], `${container.name}: the subcommand comes first`).toBe(command);
      expect(COMMANDS).toContain(command);
      // parseArgs throws FlagError on an unknown flag or one that does not apply to the subcommand.
      expect(() => agentArgs(container), container.name).not.toThrow();
      expect(agentArgs(container).command).toBe(command);
      for (const arg of args.slice(1)) {
        expect(arg, `${container.name}: flags are written --name=value`).toMatch(/^--[a-z-]+=\S+$/);
      }
    }
  });

  it("sets only environment variables that are flags' variables for that subcommand", () => {
    for (const [container, command] of [[installCni!, "install-cni"], [agent!, "run"]] as const) {
      for (const variable of container.env ?? []) {
        const spec = FLAGS.find((f) => f.env === variable.name);
        expect(spec, `${container.name}: ${variable.name} is some flag's environment variable`).toBeDefined();
        expect(spec!.commands, `${container.name}: ${variable.name} (--${spec!.name}) is read by "${command}"`).toContain(command);
        const args = container.args ?? [];
        expect(args.some((a) => a.startsWith(`--${spec!.name}=`)), `${variable.name} and --${spec!.name} both set`).toBe(false);
      }
    }
    const nodeName = agent!.env?.find((e) => e.name === "NODE_NAME");
    expect(nodeName?.valueFrom?.fieldRef?.fieldPath).toBe("spec.nodeName");
  });

  it("gives the agent the kube source, its node name and the network config from the ConfigMap", () => {
    const args = agentArgs(agent);
    expect(args.values.source).toBe("kube");
    expect(args.values["node-name"]).toBe("node-1");
    const netConf = flagValue(args, "net-conf");
    const mount = agent!.volumeMounts?.find((m) => m.mountPath === path.posix.dirname(netConf));
    const volume = podSpec.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.configMap?.name).toBe(configMap.metadata?.name);
    expect(mount?.readOnly).toBe(true);
    const text = configMap.data?.[path.posix.basename(netConf)];
    expect(text, `the ConfigMap has the key ${path.posix.basename(netConf)}`).toBeDefined();
    expect(parseNetworkConfig(text!)).toMatchObject({ network: "10.244.0.0/16", subnetLen: 24, backend: { type: "vxlan", vni: 1, port: 8472 } });
  });

  it("mounts every host path the agent writes at the same path, read-write", () => {
    // The plugin, run by the container runtime on the host, reads these paths as the agent names them (the
    // conflist holds the subnet file's path): a container path must be the host path itself.
    const run = agentArgs(agent);
    const subnetFile = flagValue(run, "subnet-file");
    const written = [flagValue(run, "cni-conf-dir"), subnetFile, path.posix.dirname(subnetFile), flagValue(run, "state-dir")];
    for (const file of written) {
      expect(hostPathOf(agent!, file), `${file} is on a hostPath mount`).toEqual({ hostPath: file, readOnly: false });
    }
    expect(flagValue(run, "cni-conf-dir")).toBe("/etc/cni/net.d");
    // And nothing more: the plugin's directories are the initContainer's (bin) and the plugin's own (IPAM).
    const hostPaths = (agent!.volumeMounts ?? []).map((m) => podSpec.volumes?.find((v) => v.name === m.name)?.hostPath?.path).filter((p) => p !== undefined);
    expect(hostPaths.sort()).toEqual(["/etc/cni/net.d", "/run/weft", "/sys/fs/bpf"]);
    expect(hostPathOf(agent!, "/sys/fs/bpf/weft"), "the eBPF pins are on the host's bpffs").toEqual({ hostPath: "/sys/fs/bpf/weft", readOnly: false });
  });

  it("installs the plugin from the image into the host's /opt/cni/bin", () => {
    const args = agentArgs(installCni);
    const binDir = flagValue(args, "cni-bin-dir");
    expect(hostPathOf(installCni!, binDir)).toEqual({ hostPath: "/opt/cni/bin", readOnly: false });
    const source = flagValue(args, "cni-source");
    expect(hostPathOf(installCni!, source), "the plugin comes from the image, not from a mount").toBeUndefined();
    expect(dockerfileCopyDestinations()).toContain(source);
  });

  it("mounts only volumes the pod declares, and the pod declares none it does not mount", () => {
    const declared = (podSpec.volumes ?? []).map((v) => v.name);
    const used = [...(podSpec.initContainers ?? []), ...podSpec.containers].flatMap((c) => (c.volumeMounts ?? []).map((m) => m.name));
    for (const name of used) expect(declared).toContain(name);
    expect(new Set(used)).toEqual(new Set(declared));
  });

  it("probes /healthz and /readyz at the debug endpoint, which listens on loopback only", () => {
    const debugAddr = flagValue(agentArgs(agent), "debug-addr");
    const match = /^(127\.0\.0\.1):(\d+)$/.exec(debugAddr);
    expect(match, `--debug-addr ${debugAddr} is on 127.0.0.1 (the endpoint is unauthenticated)`).not.toBeNull();
    // A hostNetwork pod's IP is the node's: kubelet must be told to probe 127.0.0.1.
    expect(agent!.livenessProbe?.httpGet).toMatchObject({ host: match![1], port: Number(match![2]), path: "/healthz" });
    expect(agent!.readinessProbe?.httpGet).toMatchObject({ host: match![1], port: Number(match![2]), path: "/readyz" });
    // `weft-agent status` in the container reads the same address from the environment.
    expect(flagValue(parseArgs(["status"], Object.fromEntries((agent!.env ?? []).map((e) => [e.name, e.value ?? ""]))), "debug-addr")).toBe(debugAddr);
  });

  it("runs on every node in the host network with root and only NET_ADMIN, NET_RAW, BPF and PERFMON", () => {
    expect(podSpec.hostNetwork).toBe(true);
    expect(podSpec.priorityClassName).toBe("system-node-critical");
    expect(podSpec.tolerations).toContainEqual({ operator: "Exists" });
    expect(podSpec.serviceAccountName).toBe(serviceAccount.metadata?.name);
    expect(daemonSet.spec?.updateStrategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } });
    expect(agent!.securityContext).toMatchObject({ runAsUser: 0, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    expect([...(agent!.securityContext?.capabilities?.add ?? [])].sort()).toEqual(["BPF", "NET_ADMIN", "NET_RAW", "PERFMON"]);
    expect(agent!.securityContext?.privileged).toBeUndefined();
    // bpf(2) under CAP_BPF: refused by older runtimes' default seccomp profiles (the image e2e runs it so).
    expect(agent!.securityContext?.seccompProfile).toEqual({ type: "Unconfined" });
    expect(installCni!.securityContext?.seccompProfile).toBeUndefined();
    expect(installCni!.securityContext?.capabilities).toEqual({ drop: ["ALL"] });
    expect(agent!.resources).toEqual({ requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } });
  });

  it("lives in a namespace that admits privileged pods", () => {
    expect(namespace.metadata?.labels?.["pod-security.kubernetes.io/enforce"]).toBe("privileged");
    for (const resource of [serviceAccount, configMap, daemonSet]) expect(resource.metadata?.namespace).toBe(namespace.metadata?.name);
  });

  it("uses the image of this version, as the Dockerfile labels it", () => {
    const image = `ghcr.io/weft-net/weft:${pkg.version}`;
    expect(installCni!.image).toBe(image);
    expect(agent!.image).toBe(image);
    expect(/^ARG VERSION=(\S+)$/m.exec(fs.readFileSync(path.join(root, "Dockerfile"), "utf8"))?.[1], "the Dockerfile's VERSION default").toBe(pkg.version);
  });
});

// What each API call of the agent needs (group-qualified outside the core group). A call missing here fails the
// test below: add it, and its grant.
const API_PERMISSIONS: Record<string, string> = {
  listNode: "nodes:list",
  readNode: "nodes:get",
  patchNode: "nodes:patch",
  patchNodeStatus: "nodes/status:patch",
  listNamespace: "namespaces:list",
  listPodForAllNamespaces: "pods:list",
  listNetworkPolicyForAllNamespaces: "networking.k8s.io/networkpolicies:list",
};
/** The paths the agent watches (client-node's Watch and ListWatch), and what each needs. */
const WATCHED: Record<string, string> = {
  "/api/v1/nodes": "nodes:watch",
  "/api/v1/namespaces": "namespaces:watch",
  "/api/v1/pods": "pods:watch",
  "/apis/networking.k8s.io/v1/networkpolicies": "networking.k8s.io/networkpolicies:watch",
};

function agentSources(dir = path.join(root, "agent")): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return agentSources(file);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [file] : [];
  });
}

describe("RBAC", () => {
  it("grants exactly what the kube sources call: read nodes and patch their own, read pods, namespaces and NetworkPolicies", () => {
    const needed = new Set<string>();
    for (const file of agentSources()) {
      const text = fs.readFileSync(file, "utf8");
      if (!text.includes("@kubernetes/client-node")) continue;
      for (const [, client] of text.matchAll(/makeApiClient\((\w+)\)/g)) expect(["CoreV1Api", "NetworkingV1Api"], `${file}: a client without grants`).toContain(client);
      for (const [, method] of text.matchAll(/(?:#api|\bapi|\bcore|\bnetworking)\.(\w+)\(/g)) {
        expect(API_PERMISSIONS[method!], `${path.relative(root, file)} calls ${method}: add it to API_PERMISSIONS and the ClusterRole`).toBeDefined();
        needed.add(API_PERMISSIONS[method!]!);
      }
      // Informers list and watch their paths.
      if (/new (ListWatch|Watch)\b/.test(text)) {
        for (const [watched, grant] of Object.entries(WATCHED)) if (text.includes(`"${watched}"`) || text.includes(`"${watched}?`)) needed.add(grant);
      }
    }
    expect(needed.size, "the kube sources were found").toBeGreaterThan(0);

    const granted = new Set<string>();
    for (const rule of clusterRole.rules ?? []) {
      expect(rule.apiGroups).toHaveLength(1);
      expect(rule.resourceNames).toBeUndefined();
      expect(rule.nonResourceURLs).toBeUndefined();
      const group = rule.apiGroups![0] === "" ? "" : `${rule.apiGroups![0]}/`;
      for (const resource of rule.resources ?? []) for (const verb of rule.verbs) granted.add(`${group}${resource}:${verb}`);
    }
    expect([...granted].sort()).toEqual([...needed].sort());
    expect([...granted].sort()).toEqual([
      "namespaces:list", "namespaces:watch", "networking.k8s.io/networkpolicies:list", "networking.k8s.io/networkpolicies:watch",
      "nodes/status:patch", "nodes:get", "nodes:list", "nodes:patch", "nodes:watch", "pods:list", "pods:watch",
    ]);
  });

  it("binds the ClusterRole to the DaemonSet's service account", () => {
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole.metadata?.name });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: podSpec.serviceAccountName, namespace: namespace.metadata?.name }]);
  });
});

/** Where the Dockerfile's final stage COPY instructions put each source. */
function dockerfileCopyDestinations(): string[] {
  const text = fs.readFileSync(path.join(root, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const finalStage = text.slice(text.lastIndexOf("\nFROM "));
  return [...finalStage.matchAll(/^COPY\s+(.+)$/gm)].flatMap(([, rest]) => {
    const words = rest!.split(/\s+/).filter((w) => w && !w.startsWith("--"));
    const destination = words.pop()!;
    // Docker's rules: a directory ("dir/") lands as the destination; a file in a destination "dir/" keeps its name.
    return words.map((source) => (source.endsWith("/") || !destination.endsWith("/") ? destination : path.posix.join(destination, path.posix.basename(source))));
  });
}
