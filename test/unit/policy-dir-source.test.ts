// The file policy source on a real directory: what it publishes as files appear, change, break and go, and that a
// change to one file re-reads that file only (the others' objects are the same instances, not parsed again: the
// update latency at 10,000 pods in docs/benchmarks.md depends on it).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { PolicyDirSource } from "../../agent/policy/dir-source";
import type { PolicySnapshot } from "../../agent/policy/enforcer";

const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as never;
const pod = (name: string, ip: string) => ({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "x" }, status: { podIP: ip } });
const deny = (name: string) => ({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: "x" }, spec: { podSelector: {} } });

describe("PolicyDirSource", () => {
  let dir: string;
  let source: PolicyDirSource;
  let changes: number;
  const abort = new AbortController();

  /** Writes `file` as a List by renaming it into place, with an mtime of its own (`second`), as a tool would. */
  const write = (file: string, items: unknown[] | string, second: number): void => {
    const temp = path.join(dir, `.${file}.tmp`);
    fs.writeFileSync(temp, typeof items === "string" ? items : JSON.stringify({ apiVersion: "v1", kind: "List", items }));
    fs.utimesSync(temp, second, second);
    fs.renameSync(temp, path.join(dir, file));
  };
  /** The snapshot after the next change the source publishes (inotify tells it; its poll is a minute away). */
  const next = async (before: number): Promise<PolicySnapshot> => {
    const deadline = Date.now() + 5_000;
    while (changes === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    // Events of one rename may come as several: let them settle.
    await new Promise((resolve) => setTimeout(resolve, 50));
    return source.snapshot();
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "weft-policy-dir-"));
    changes = 0;
    source = new PolicyDirSource({ dir, logger, pollIntervalMs: 60_000 });
  });
  afterEach(async () => {
    await source.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("publishes the documents of every file, then each change: a file rewritten, broken, removed", async () => {
    write("pods.json", [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")], 1000);
    write("policies.yaml", "kind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nmetadata: {name: d, namespace: x}\nspec: {podSelector: {}}\n", 1000);
    await source.start(() => changes++, abort.signal);
    let snapshot = source.snapshot();
    expect(snapshot.synced).toBe(true);
    expect(snapshot.world.pods.map((p) => p.ips[0])).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(snapshot.world.policies.map((p) => p.name)).toEqual(["d"]);

    // Same size, new time: read again.
    write("pods.json", [pod("a", "10.0.0.3"), pod("b", "10.0.0.2")], 2000);
    snapshot = await next(changes);
    expect(snapshot.world.pods.map((p) => p.ips[0])).toEqual(["10.0.0.3", "10.0.0.2"]);

    // Broken: named, and its objects as last read stay in force.
    write("pods.json", "{ not json", 3000);
    snapshot = await next(changes);
    expect(snapshot.errors.map((e) => e.object)).toContain("file pods.json");
    expect(snapshot.world.pods.map((p) => p.ips[0])).toEqual(["10.0.0.3", "10.0.0.2"]);

    fs.rmSync(path.join(dir, "policies.yaml"));
    write("pods.json", [pod("a", "10.0.0.3")], 4000);
    snapshot = await next(changes);
    expect(snapshot.errors).toEqual([]);
    expect(snapshot.world.policies).toEqual([]);
    expect(snapshot.world.pods.map((p) => p.name)).toEqual(["a"]);
  });

  test("a change to one file leaves the other files' objects as they were read, not read and parsed again", async () => {
    write("pods.json", Array.from({ length: 100 }, (_, i) => pod(`p${i}`, `10.0.1.${i}`)), 1000);
    write("policies.json", [deny("one")], 1000);
    await source.start(() => changes++, abort.signal);
    const first = source.snapshot().world;
    write("policies.json", [deny("one"), deny("two")], 2000);
    await next(changes);
    const second = source.snapshot().world;
    expect(second.policies.map((p) => p.name)).toEqual(["one", "two"]);
    expect(second.pods).toHaveLength(100);
    second.pods.forEach((p, i) => expect(p).toBe(first.pods[i]));
    // The changed file's objects are new.
    expect(second.policies[0]).not.toBe(first.policies[0]);
  });
});
