import { describe, expect, test } from "vitest";
import { selectorKey, selectorMatches } from "../../agent/policy/selector";

describe("label selectors, with Kubernetes semantics", () => {
  const labels = { app: "web", tier: "front" };

  test("an empty selector matches everything, also a pod without labels", () => {
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({}, {})).toBe(true);
    expect(selectorMatches({ matchLabels: {}, matchExpressions: [] }, {})).toBe(true);
  });

  test("matchLabels needs every pair", () => {
    expect(selectorMatches({ matchLabels: { app: "web" } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: "web", tier: "back" } }, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { env: "" } }, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { env: "" } }, { env: "" })).toBe(true);
  });

  test("In needs the key with one of the values", () => {
    expect(selectorMatches({ matchExpressions: [{ key: "app", operator: "In", values: ["db", "web"] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "app", operator: "In", values: ["db"] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "env", operator: "In", values: ["prod"] }] }, labels)).toBe(false);
  });

  test("NotIn matches when the key is absent or has none of the values", () => {
    expect(selectorMatches({ matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "app", operator: "NotIn", values: ["db"] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "app", operator: "NotIn", values: ["web"] }] }, labels)).toBe(false);
  });

  test("Exists and DoesNotExist look at the key only", () => {
    expect(selectorMatches({ matchExpressions: [{ key: "app", operator: "Exists" }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "env", operator: "Exists" }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "env", operator: "DoesNotExist" }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "app", operator: "DoesNotExist" }] }, labels)).toBe(false);
  });

  test("matchLabels and matchExpressions are ANDed", () => {
    const selector = { matchLabels: { app: "web" }, matchExpressions: [{ key: "tier", operator: "In" as const, values: ["back"] }] };
    expect(selectorMatches(selector, labels)).toBe(false);
    expect(selectorMatches(selector, { app: "web", tier: "back" })).toBe(true);
  });

  test("a label inherited from Object.prototype is not a label", () => {
    expect(selectorMatches({ matchExpressions: [{ key: "constructor", operator: "Exists" }] }, {})).toBe(false);
  });

  test("selectors that mean the same have one key", () => {
    const a = selectorKey({ matchLabels: { a: "1", b: "2" }, matchExpressions: [{ key: "c", operator: "In", values: ["y", "x", "x"] }] });
    const b = selectorKey({ matchExpressions: [{ key: "c", operator: "In", values: ["x", "y"] }], matchLabels: { b: "2", a: "1" } });
    expect(a).toBe(b);
    expect(selectorKey({ matchLabels: { a: "1" } })).not.toBe(selectorKey({ matchLabels: { a: "2" } }));
  });
});
