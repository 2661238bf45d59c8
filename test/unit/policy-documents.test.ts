import { describe, expect, test } from "vitest";
import { parsePolicyDocuments } from "../../agent/policy/documents";

describe("parsePolicyDocuments", () => {
  test("YAML documents separated by ---, of the three kinds policy reads", () => {
    const text = [
      "apiVersion: v1", "kind: Namespace", "metadata:", "  name: x", "---",
      "apiVersion: networking.k8s.io/v1", "kind: NetworkPolicy", "metadata:", "  name: deny", "  namespace: x", "spec:", "  podSelector: {}", "---",
      "apiVersion: v1", "kind: Pod", "metadata:", "  name: a", "  namespace: x", "status:", "  podIP: 10.0.0.1", "---", "",
    ].join("\n");
    const parsed = parsePolicyDocuments(text, "x.yaml");
    expect(parsed.errors).toEqual([]);
    expect(parsed.notes).toEqual([]);
    expect(parsed.objects.map((o) => [o.kind, o.origin])).toEqual([["Namespace", "x.yaml#1"], ["NetworkPolicy", "x.yaml#2"], ["Pod", "x.yaml#3"]]);
    expect(parsed.objects[1]!.object).toEqual({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny", namespace: "x" }, spec: { podSelector: {} } });
  });

  test("a List as `kubectl get -o yaml` writes it, and a typed list whose items have no kind", () => {
    const list = "apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: a}\n- kind: Namespace\n  metadata: {name: x}\n- kind: Service\n  metadata: {name: s}\n";
    const parsed = parsePolicyDocuments(list, "all.yaml");
    expect(parsed.objects.map((o) => [o.kind, o.origin])).toEqual([["Pod", "all.yaml#1 items[0]"], ["Namespace", "all.yaml#1 items[1]"]]);
    expect(parsed.notes).toEqual(["all.yaml#1 items[2]: kind Service ignored (policy reads NetworkPolicy, Namespace and Pod)"]);
    const typed = parsePolicyDocuments(JSON.stringify({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicyList", items: [{ metadata: { name: "p" }, spec: {} }] }), "np.json");
    expect(typed.objects).toEqual([{ kind: "NetworkPolicy", object: { kind: "NetworkPolicy", metadata: { name: "p" }, spec: {} }, origin: "np.json#1 items[0]" }]);
  });

  test("JSON, as `kubectl get -o json` writes it", () => {
    const parsed = parsePolicyDocuments(JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "a" } }, null, 2), "a.json");
    expect(parsed).toEqual({ objects: [{ kind: "Pod", object: { apiVersion: "v1", kind: "Pod", metadata: { name: "a" } }, origin: "a.json#1" }], errors: [], notes: [] });
  });

  test("a document that is not valid YAML is an error naming the file, the document and the line; the others are read", () => {
    const text = "kind: Namespace\nmetadata: {name: x}\n---\nkind: Pod\nmetadata:\n  name: [a\n---\nkind: Namespace\nmetadata: {name: y}\n";
    const parsed = parsePolicyDocuments(text, "bad.yaml");
    expect(parsed.errors).toHaveLength(1);
    expect(parsed.errors[0]).toMatch(/^bad\.yaml: document 2 is not valid YAML: .* at line \d+, column \d+$/);
    expect(parsed.objects.map((o) => o.origin)).toEqual(["bad.yaml#1", "bad.yaml#3"]);
  });

  test("broken JSON is an error with its line", () => {
    const parsed = parsePolicyDocuments('{\n  "kind": "Pod",\n  "metadata": {"name": "a"\n}\n', "bad.json");
    expect(parsed.objects).toEqual([]);
    expect(parsed.errors).toHaveLength(1);
    expect(parsed.errors[0]).toMatch(/^bad\.json: document 1 is not valid YAML: .* at line \d+, column \d+$/);
  });

  test("a document that is not an object, or has no kind, is an error; a duplicate key too", () => {
    expect(parsePolicyDocuments("- a\n- b\n", "list.yaml").errors).toEqual(["list.yaml#1: not a Kubernetes object (a mapping with kind, metadata, …)"]);
    expect(parsePolicyDocuments("metadata: {name: a}\n", "nokind.yaml").errors).toEqual(["nokind.yaml#1: has no kind"]);
    expect(parsePolicyDocuments("kind: Pod\nkind: Namespace\n", "dup.yaml").errors[0]).toMatch(/^dup\.yaml: document 1 is not valid YAML: Map keys must be unique/);
  });

  test("an empty file has nothing in it", () => {
    expect(parsePolicyDocuments("", "empty.yaml")).toEqual({ objects: [], errors: [], notes: [] });
    expect(parsePolicyDocuments("# only a comment\n---\n", "empty.yaml")).toEqual({ objects: [], errors: [], notes: [] });
  });
});
