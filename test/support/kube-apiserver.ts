// A real kube-apiserver (v1.20.2, built from Debian's source by scripts/kube/build.sh) for tests, on loopback with
// ports of its own, over a real etcd (./etcd.ts). Its serving certificate is made here with openssl, from a CA of
// the run's own, for 127.0.0.1 and the underlay bridge's address (agents in node namespaces reach the server
// through a proxy there: startNetnsProxy). Authentication: a static admin token, and ServiceAccount tokens from
// the TokenRequest API. The test that starts it stops it by PID (`stop()`), also after a failure; an exit hook
// kills it if the worker dies first.
//
// What it has, and has not (no controller-manager, no scheduler, no kubelet): objects are stored and served, RBAC is
// enforced; nothing reconciles them. A Pod stays Pending unless the test writes its status; a Node keeps whatever
// status the test writes; nothing allocates pod CIDRs.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { freePort, startEtcd, type TestEtcd } from "./etcd";
import { RUN_PREFIX } from "./netns";

const CACHE = process.env.WEFT_KUBE_CACHE ?? "/var/cache/weft-kube";
export const KUBE_BIN = path.join(CACHE, "v1.20.2", "bin");
export const KUBE_APISERVER = path.join(KUBE_BIN, "kube-apiserver");
export const KUBE_PROXY = path.join(KUBE_BIN, "kube-proxy");
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");

/**
 * Why the real-Kubernetes tests cannot run here, or undefined when they can. In CI the binaries must be there
 * (scripts/install-test-deps.sh builds them): a missing one is an error, not a skip.
 */
export function kubeMissing(): string | undefined {
  const missing = [KUBE_APISERVER, KUBE_PROXY].filter((file) => !fs.existsSync(file));
  if (missing.length === 0) return undefined;
  const why = `${missing.join(", ")} missing: run scripts/kube/build.sh (about 6 minutes, once)`;
  if (process.env.CI) throw new Error(why);
  return why;
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
}

export interface KubeApiServer {
  /** https://127.0.0.1:<port> */
  url: string;
  port: number;
  /** The CA that signed the serving certificate (PEM). */
  ca: string;
  adminToken: string;
  /** The etcd behind it ("http://127.0.0.1:<port>"), for writes the API server does not make on demand. */
  etcdEndpoint: string;
  pid: number;
  /** A request as admin (or with `token`); JSON in and out. */
  request<T = unknown>(method: string, urlPath: string, body?: unknown, options?: { token?: string; contentType?: string }): Promise<ApiResponse<T>>;
  /** Like request, but throws on a status outside 2xx, naming the call. */
  must<T = unknown>(method: string, urlPath: string, body?: unknown, options?: { token?: string; contentType?: string }): Promise<T>;
  /** Stops the API server (SIGTERM, by PID), keeping etcd and the data: start() brings it back on the same port. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stops both processes and removes the data dir. Safe twice. */
  stop(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  const result = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${result.stderr}`);
}

/** A CA and a serving certificate for `ips` (and the names kube-apiserver answers to), in `dir`. */
function makeCertificates(dir: string, ips: string[]): void {
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=weft-test-ca"], dir);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"], dir);
  const sans = [...ips.map((ip) => `IP:${ip}`), "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc", "DNS:localhost"].join(",");
  fs.writeFileSync(path.join(dir, "san.ext"), `subjectAltName=${sans}\nextendedKeyUsage=serverAuth\n`);
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext"], dir);
  openssl(["genrsa", "-out", "sa.key", "2048"], dir);
  openssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
}

/**
 * Starts etcd and kube-apiserver. `extraIps`: addresses the serving certificate must also name (the underlay
 * bridge's, for agents behind a proxy there).
 */
export async function startKubeApiServer(options: { label?: string; extraIps?: string[] } = {}): Promise<KubeApiServer> {
  const label = options.label ?? "kube";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${RUN_PREFIX}${label}-`));
  makeCertificates(dir, ["127.0.0.1", ...(options.extraIps ?? [])]);
  const adminToken = randomBytes(16).toString("hex");
  fs.writeFileSync(path.join(dir, "tokens.csv"), `${adminToken},admin,admin-uid,system:masters\n`, { mode: 0o600 });
  const ca = fs.readFileSync(path.join(dir, "ca.crt"), "utf8");
  const etcd: TestEtcd = await startEtcd(`${label}-etcd`);
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let running = false;

  const launch = (): void => {
    const logFd = fs.openSync(path.join(dir, "kube-apiserver.log"), "a");
    child = spawn(KUBE_APISERVER, [
      "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", `--secure-port=${port}`,
      `--etcd-servers=${etcd.endpoint}`,
      "--service-account-issuer=https://kubernetes.default.svc",
      `--service-account-key-file=${path.join(dir, "sa.pub")}`, `--service-account-signing-key-file=${path.join(dir, "sa.key")}`,
      "--authorization-mode=RBAC", `--token-auth-file=${path.join(dir, "tokens.csv")}`,
      `--tls-cert-file=${path.join(dir, "server.crt")}`, `--tls-private-key-file=${path.join(dir, "server.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16", `--cert-dir=${path.join(dir, "certs")}`,
      // Endpoints validation refuses loopback addresses; nothing here needs the kubernetes Service's endpoints.
      "--endpoint-reconciler-type=none", "--profiling=false",
    ], { stdio: ["ignore", logFd, logFd] });
    fs.closeSync(logFd);
    running = true;
    exited = new Promise<void>((resolve) => child!.once("exit", () => ((running = false), resolve())));
  };
  const killOnExit = (): void => {
    if (running && child?.pid) process.kill(child.pid, "SIGKILL");
  };
  process.once("exit", killOnExit);

  const request = <T>(method: string, urlPath: string, body?: unknown, opts: { token?: string; contentType?: string } = {}): Promise<ApiResponse<T>> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(`${url}${urlPath}`, {
        method, ca, timeout: 10_000,
        headers: {
          authorization: `Bearer ${opts.token ?? adminToken}`, accept: "application/json",
          ...(payload === undefined ? {} : { "content-type": opts.contentType ?? "application/json", "content-length": Buffer.byteLength(payload) }),
        },
      }, (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (text += chunk));
        response.on("end", () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // /readyz and friends answer text
          }
          resolve({ status: response.statusCode ?? 0, body: parsed as T });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${urlPath}: no answer in 10 s`)));
      req.on("error", reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });

  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (!running) break;
      try {
        if ((await request("GET", "/readyz")).status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const log = fs.readFileSync(path.join(dir, "kube-apiserver.log"), "utf8").split("\n").slice(-30).join("\n");
    throw new Error(`kube-apiserver at ${url} not ready${running ? " after 60 s" : " (it exited)"}\n--- log ---\n${log}`);
  };

  let stopped = false;
  const pause = async (): Promise<void> => {
    if (running && child?.pid) {
      process.kill(child.pid, "SIGTERM");
      const ended = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
      if (!ended && running) {
        process.kill(child.pid, "SIGKILL");
        await exited;
      }
    }
  };
  const server: KubeApiServer = {
    url, port, ca, adminToken, etcdEndpoint: etcd.endpoint,
    get pid() {
      return child?.pid ?? 0;
    },
    request,
    must: async <T>(method: string, urlPath: string, body?: unknown, opts?: { token?: string; contentType?: string }) => {
      const answer = await request<T>(method, urlPath, body, opts);
      if (answer.status < 200 || answer.status > 299) throw new Error(`${method} ${urlPath}: HTTP ${answer.status} ${JSON.stringify(answer.body).slice(0, 500)}`);
      return answer.body;
    },
    pause,
    resume: async () => {
      launch();
      await waitReady();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      process.off("exit", killOnExit);
      await pause();
      await etcd.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    launch();
    await waitReady();
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/** The objects of manifests/weft.yaml, by kind (the ClusterRole the DaemonSet runs with). */
export function manifestObjects(kind: string): Record<string, unknown>[] {
  const text = fs.readFileSync(path.join(repoRoot, "manifests/weft.yaml"), "utf8");
  return parseAllDocuments(text).map((d) => d.toJSON() as Record<string, unknown>).filter((o) => o?.kind === kind);
}

/**
 * A ServiceAccount `namespace/name` bound to `rules` (default: the ClusterRole of manifests/weft.yaml), and a token
 * for it from the TokenRequest API: what the DaemonSet's agent authenticates with.
 */
export async function serviceAccountToken(api: KubeApiServer, options: { namespace?: string; name?: string; rules?: unknown[] } = {}): Promise<string> {
  const namespace = options.namespace ?? "weft";
  const name = options.name ?? "weft";
  if ((await api.request("GET", `/api/v1/namespaces/${namespace}`)).status === 404) {
    await api.must("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
  }
  await api.must("POST", `/api/v1/namespaces/${namespace}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace } });
  const role = manifestObjects("ClusterRole")[0]!;
  const roleName = `${name}-${namespace}`;
  await api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: roleName }, rules: options.rules ?? role.rules,
  });
  await api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: roleName },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: roleName },
    subjects: [{ kind: "ServiceAccount", name, namespace }],
  });
  const answer = await api.must<{ status: { token: string } }>("POST", `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 7200 },
  });
  return answer.status.token;
}

/** A kubeconfig for `server` (as the agent reaches it) with `token`, written to `file`. */
export function writeKubeconfig(file: string, api: KubeApiServer, server: string, token: string): string {
  fs.writeFileSync(file, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": "weft",
    clusters: [{ name: "test", cluster: { server, "certificate-authority-data": Buffer.from(api.ca).toString("base64") } }],
    users: [{ name: "weft", user: { token } }],
    contexts: [{ name: "weft", context: { cluster: "test", user: "weft" } }],
  }), { mode: 0o600 });
  return file;
}

/** A Node as kube-controller-manager and the kubelet would leave it: pod CIDR, InternalIP, Ready. */
export async function createNode(api: KubeApiServer, name: string, ip: string, podCidr: string): Promise<void> {
  await api.must("POST", "/api/v1/nodes", {
    apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name } }, spec: { podCIDR: podCidr, podCIDRs: [podCidr] },
  });
  const now = new Date().toISOString();
  await api.must("PATCH", `/api/v1/nodes/${name}/status`, {
    status: {
      addresses: [{ type: "InternalIP", address: ip }, { type: "Hostname", address: name }],
      conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "simulated", lastHeartbeatTime: now, lastTransitionTime: now }],
    },
  }, { contentType: "application/merge-patch+json" });
}

/** A running Pod, as the kubelet would report it: created, then its status (IP, phase Running) written. */
export async function createPod(api: KubeApiServer, pod: { namespace: string; name: string; node: string; ip: string; labels: Record<string, string>; ports?: { name: string; containerPort: number; protocol?: string }[] }): Promise<void> {
  // The ServiceAccount admission plugin wants the namespace's "default" account, which no controller made here.
  if ((await api.request("GET", `/api/v1/namespaces/${pod.namespace}/serviceaccounts/default`)).status === 404) {
    await api.must("POST", `/api/v1/namespaces/${pod.namespace}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: pod.namespace } });
  }
  await api.must("POST", `/api/v1/namespaces/${pod.namespace}/pods`, {
    apiVersion: "v1", kind: "Pod", metadata: { name: pod.name, namespace: pod.namespace, labels: pod.labels },
    // No token mounted: no controller creates the account's token here, and the admission plugin would wait for one.
    spec: { nodeName: pod.node, automountServiceAccountToken: false, containers: [{ name: "c", image: "localhost/busybox:weft", ports: pod.ports ?? [] }] },
  });
  await api.must("PATCH", `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}/status`, {
    status: { phase: "Running", podIP: pod.ip, podIPs: [{ ip: pod.ip }] },
  }, { contentType: "application/merge-patch+json" });
}
