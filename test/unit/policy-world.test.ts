import { describe, expect, test } from "vitest";
import { PolicyStore, objectKey } from "../../agent/policy/world";

const policy = (name: string, spec: unknown, namespace = "x") => ({ kind: "NetworkPolicy", metadata: { name, namespace }, spec });
const deny = policy("deny", { podSelector: {} });
const badExcept = policy("deny", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/16", except: ["10.9.0.0/16"] } }] }] });
const BAD_EXCEPT = "NetworkPolicy x/deny: spec.ingress[0].from[0].ipBlock.except[0] 10.9.0.0/16 is not inside 10.0.0.0/16";

describe("PolicyStore", () => {
  test("keeps the latest version of each object, keyed by namespace/name", () => {
    const store = new PolicyStore();
    store.upsert("Namespace", { kind: "Namespace", metadata: { name: "x", labels: { team: "a" } } });
    store.upsert("Pod", { kind: "Pod", metadata: { name: "a", namespace: "x" }, status: { podIP: "10.0.0.1" } });
    store.upsert("Pod", { kind: "Pod", metadata: { name: "a", namespace: "x" }, status: { podIP: "10.0.0.2" } });
    store.upsert("NetworkPolicy", deny);
    expect(store.world()).toEqual({
      policies: [{ namespace: "x", name: "deny", podSelector: {}, ingress: [], egress: null }],
      namespaces: [{ name: "x", labels: { team: "a", "kubernetes.io/metadata.name": "x" } }],
      pods: [{ namespace: "x", name: "a", ips: ["10.0.0.2"], labels: {}, ports: [] }],
    });
    expect(store.errors()).toEqual([]);
    expect(store.delete("Pod", "x/a")).toBe(true);
    expect(store.world().pods).toEqual([]);
    expect(store.delete("Pod", "x/a")).toBe(false);
  });

  test("a policy that fails validation is not applied and is named in errors; the others stay", () => {
    const store = new PolicyStore();
    store.upsert("NetworkPolicy", policy("other", { podSelector: {} }));
    expect(store.upsert("NetworkPolicy", badExcept)).toBe(BAD_EXCEPT);
    expect(store.world().policies.map((p) => p.name)).toEqual(["other"]);
    expect(store.errors()).toEqual([{ object: "NetworkPolicy x/deny", error: BAD_EXCEPT }]);
  });

  test("an invalid update keeps the last valid version in force, and says so; a valid one clears the error", () => {
    const store = new PolicyStore();
    store.upsert("NetworkPolicy", deny);
    store.upsert("NetworkPolicy", badExcept, { origin: "p.yaml#1" });
    expect(store.world().policies).toEqual([{ namespace: "x", name: "deny", podSelector: {}, ingress: [], egress: null }]);
    expect(store.errors()).toEqual([{ object: "NetworkPolicy x/deny", error: `${BAD_EXCEPT} (p.yaml#1) (its last valid version stays in force)` }]);
    store.upsert("NetworkPolicy", policy("deny", { podSelector: {}, ingress: [{}] }));
    expect(store.errors()).toEqual([]);
    expect(store.world().policies[0]!.ingress).toEqual([{ peers: [], ports: [] }]);
    store.upsert("NetworkPolicy", badExcept);
    store.delete("NetworkPolicy", "x/deny");
    expect(store.errors()).toEqual([]);
    expect(store.world().policies).toEqual([]);
  });

  test("world() is the same object until something changes; generation counts changes", () => {
    const store = new PolicyStore();
    const first = store.world();
    expect(store.world()).toBe(first);
    const generation = store.generation;
    store.upsert("NetworkPolicy", badExcept);
    expect(store.world()).toBe(first);
    store.upsert("NetworkPolicy", deny);
    expect(store.world()).not.toBe(first);
    expect(store.generation).toBe(generation + 1);
  });

  test("replaceAll: the whole set at once; objects of unreadable files are kept; duplicates are named", () => {
    const store = new PolicyStore();
    store.replaceAll([
      { kind: "NetworkPolicy", object: deny, origin: "a.yaml#1" },
      { kind: "NetworkPolicy", object: policy("from-b", { podSelector: {} }), origin: "b.yaml#1" },
      { kind: "Pod", object: { kind: "Pod", metadata: { name: "a", namespace: "x" } }, origin: "b.yaml#2" },
    ]);
    expect(store.world().policies.map((p) => p.name)).toEqual(["deny", "from-b"]);
    // b.yaml is unreadable this time (a YAML error): its objects stay; a.yaml's deny is now invalid: its last version stays.
    store.replaceAll([{ kind: "NetworkPolicy", object: badExcept, origin: "a.yaml#1" }], {
      unreadable: ["b.yaml"], errors: [{ object: "file b.yaml", error: "b.yaml: document 1 is not valid YAML: …" }],
    });
    expect(store.world().policies.map((p) => p.name).sort()).toEqual(["deny", "from-b"]);
    expect(store.world().pods.map((p) => p.name)).toEqual(["a"]);
    expect(store.errors()).toEqual([
      { object: "NetworkPolicy x/deny", error: `${BAD_EXCEPT} (a.yaml#1) (its last valid version stays in force)` },
      { object: "file b.yaml", error: "b.yaml: document 1 is not valid YAML: …" },
    ]);
    store.replaceAll([{ kind: "NetworkPolicy", object: deny, origin: "a.yaml#1" }, { kind: "NetworkPolicy", object: deny, origin: "c.yaml#4" }]);
    expect(store.world().policies.map((p) => p.name)).toEqual(["deny"]);
    expect(store.errors()).toEqual([{ object: "NetworkPolicy x/deny", error: "NetworkPolicy x/deny: defined 2 times (a.yaml#1, c.yaml#4); the last is used" }]);
  });

  test("an object without a name is an error labelled by where it came from", () => {
    const store = new PolicyStore();
    expect(store.upsert("NetworkPolicy", { kind: "NetworkPolicy", spec: {} }, { origin: "p.yaml#3" })).toBe("NetworkPolicy has no metadata.name (p.yaml#3)");
    expect(store.errors()).toEqual([{ object: "NetworkPolicy without a name (p.yaml#3)", error: "NetworkPolicy has no metadata.name (p.yaml#3)" }]);
  });

  test("objectKey: namespace/name, default namespace, a Namespace's name", () => {
    expect(objectKey("Pod", { metadata: { name: "a", namespace: "x" } })).toBe("x/a");
    expect(objectKey("NetworkPolicy", { metadata: { name: "a" } })).toBe("default/a");
    expect(objectKey("Namespace", { metadata: { name: "x" } })).toBe("x");
    expect(objectKey("Pod", {})).toBeUndefined();
  });
});
