// The real kube-apiserver (scripts/kube/build.sh) over etcd, for the benchmarks (kube-scale.mjs, policy.mjs): both on
// the loopback of a namespace of the run, with a CA and serving certificate of the run's own (openssl), a static
// admin token and RBAC. The caller's `startIn` starts them (and ends them by PID); requests go from a Node script
// run inside the namespace, up to 32 at a time.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { run } from "./lib.mjs";

// Sends a JSON list of {method, path, body, contentType} with up to 32 in flight; prints the first failures.
const REQUESTS = `
const https = require("node:https");
const { url, token, ca, requests } = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const agent = new https.Agent({ keepAlive: true, maxSockets: 32, ca });
let next = 0, failed = [];
const one = (r) => new Promise((resolve) => {
  const body = r.body === undefined ? undefined : JSON.stringify(r.body);
  const req = https.request(url + r.path, { method: r.method, agent, headers: { authorization: "Bearer " + token, "content-type": r.contentType || "application/json", ...(body ? { "content-length": Buffer.byteLength(body) } : {}) } }, (res) => {
    let text = ""; res.on("data", (d) => (text += d)); res.on("end", () => { if (res.statusCode >= 300) failed.push(r.method + " " + r.path + " " + res.statusCode + " " + text.slice(0, 200)); resolve(); });
  });
  req.on("error", (e) => { failed.push(String(e)); resolve(); });
  if (body) req.write(body);
  req.end();
});
(async () => {
  await Promise.all(Array.from({ length: 32 }, async () => { while (next < requests.length) await one(requests[next++]); }));
  process.stdout.write(JSON.stringify(failed.slice(0, 5)));
  process.exit(failed.length ? 1 : 0);
})();
`;

// Lists `path` in pages of `limit` as an informer does; prints the items and the milliseconds it took.
const LIST = `
const https = require("node:https");
const { url, token, ca, path, limit } = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const agent = new https.Agent({ keepAlive: true, ca });
const get = (query) => new Promise((resolve, reject) => {
  https.get(url + path + query, { agent, headers: { authorization: "Bearer " + token } }, (res) => {
    let text = ""; res.on("data", (d) => (text += d)); res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(res.statusCode + " " + text.slice(0, 200)))));
  }).on("error", reject);
});
(async () => {
  const started = performance.now();
  let items = 0, token = "";
  do {
    const page = await get("?limit=" + limit + (token ? "&continue=" + encodeURIComponent(token) : ""));
    items += page.items.length;
    token = page.metadata.continue || "";
  } while (token);
  process.stdout.write(JSON.stringify({ items, ms: performance.now() - started }));
})().catch((e) => { process.stderr.write(String(e)); process.exit(1); });
`;

/**
 * etcd and kube-apiserver in `ns` (127.0.0.1:2379, :6443), state under `dir`; resolves once /readyz answers, with
 * `send(requests)` (throws on any failure), `timeList(path)` and a kubeconfig file for the admin token.
 */
export async function startApiServer({ ns, dir, kubeBin, startIn }) {
  fs.mkdirSync(dir, { recursive: true });
  const ssl = (...args) => run("openssl", args.map((a) => a.replaceAll("$D", dir)));
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "$D/ca.key", "-out", "$D/ca.crt", "-days", "1", "-subj", "/CN=bench-ca");
  ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "$D/server.key", "-out", "$D/server.csr", "-subj", "/CN=kube-apiserver");
  fs.writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  ssl("x509", "-req", "-in", "$D/server.csr", "-CA", "$D/ca.crt", "-CAkey", "$D/ca.key", "-CAcreateserial", "-out", "$D/server.crt", "-days", "1", "-extfile", "$D/san.ext");
  ssl("genrsa", "-out", "$D/sa.key", "2048");
  ssl("rsa", "-in", "$D/sa.key", "-pubout", "-out", "$D/sa.pub");
  const token = randomBytes(16).toString("hex");
  fs.writeFileSync(path.join(dir, "tokens.csv"), `${token},admin,admin,system:masters\n`);
  startIn("/usr/bin/etcd", [
    "--data-dir", path.join(dir, "etcd"), "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
    "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
    "--initial-cluster", "default=http://127.0.0.1:2380", "--quota-backend-bytes", String(4 * 1024 ** 3),
  ], path.join(dir, "etcd.log"));
  startIn(path.join(kubeBin, "kube-apiserver"), [
    "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=6443", "--etcd-servers=http://127.0.0.1:2379",
    "--service-account-issuer=https://kubernetes.default.svc", `--service-account-key-file=${dir}/sa.pub`, `--service-account-signing-key-file=${dir}/sa.key`,
    "--authorization-mode=RBAC", `--token-auth-file=${dir}/tokens.csv`, `--tls-cert-file=${dir}/server.crt`, `--tls-private-key-file=${dir}/server.key`,
    "--service-cluster-ip-range=10.96.0.0/16", `--cert-dir=${dir}/certs`, "--endpoint-reconciler-type=none", "--profiling=false",
  ], path.join(dir, "kube-apiserver.log"));
  const api = { url: "https://127.0.0.1:6443", token, ca: fs.readFileSync(path.join(dir, "ca.crt"), "utf8") };
  const send = (requests) => {
    const result = spawnSync("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", REQUESTS], {
      input: JSON.stringify({ ...api, requests }), encoding: "utf8", maxBuffer: 64 * 1024 * 1024,
    });
    let failed;
    try {
      failed = JSON.parse(result.stdout || "[]");
    } catch {
      failed = [result.stderr.slice(-2000)];
    }
    if (result.status !== 0 || failed.length) throw new Error(`API requests failed: ${failed.join("; ") || result.stderr.slice(-2000)}`);
  };
  /** The time the server takes to serve a paged list of `path` (one client, pages of `limit`): { items, ms }. */
  const timeList = (listPath, limit = 500) => {
    const result = spawnSync("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", LIST], { input: JSON.stringify({ ...api, path: listPath, limit }), encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    if (result.status !== 0) throw new Error(`list ${listPath}: ${result.stderr.slice(-2000)}`);
    return JSON.parse(result.stdout);
  };
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      send([{ method: "GET", path: "/readyz" }]);
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`kube-apiserver not ready: ${error.message}\n${fs.readFileSync(path.join(dir, "kube-apiserver.log"), "utf8").slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const kubeconfig = path.join(dir, "kubeconfig");
  fs.writeFileSync(kubeconfig, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": "b",
    clusters: [{ name: "b", cluster: { server: api.url, "certificate-authority-data": Buffer.from(api.ca).toString("base64") } }],
    users: [{ name: "b", user: { token } }], contexts: [{ name: "b", context: { cluster: "b", user: "b" } }],
  }));
  return { ...api, send, timeList, kubeconfig };
}
