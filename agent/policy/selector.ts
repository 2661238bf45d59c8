// Label selectors (metav1.LabelSelector) with Kubernetes' semantics: matchLabels and matchExpressions are ANDed;
// an empty selector {} matches everything; In needs the key with one of the values; NotIn matches when the key
// is absent or has none of the values; Exists and DoesNotExist look at the key only.
import { isLabelKey, isLabelValue } from "./names";
import { readList, readObject, readStringMap, type Problems } from "./fields";
import type { LabelOperator, LabelSelector } from "./types";

const OPERATORS: readonly LabelOperator[] = ["In", "NotIn", "Exists", "DoesNotExist"];

/**
 * Reads and validates a selector at `path` as the API server validates one: keys and values of label syntax, a
 * known operator, values for In and NotIn and none for Exists and DoesNotExist. Absent or null = {}.
 */
export function parseLabelSelector(value: unknown, path: string, problems: Problems): LabelSelector {
  const object = readObject(value, path, problems) ?? {};
  const selector: LabelSelector = {};
  if (object.matchLabels !== undefined && object.matchLabels !== null) {
    const labelsPath = `${path}.matchLabels`;
    const matchLabels = readStringMap(object.matchLabels, labelsPath, problems);
    for (const [key, label] of Object.entries(matchLabels)) {
      if (!isLabelKey(key)) problems.push(`${labelsPath} key ${JSON.stringify(key)} is not a label key`);
      else if (!isLabelValue(label)) problems.push(`${labelsPath}[${JSON.stringify(key)}] ${JSON.stringify(label)} is not a label value`);
    }
    selector.matchLabels = matchLabels;
  }
  const expressions = readList(object.matchExpressions, `${path}.matchExpressions`, problems);
  if (expressions.length > 0) {
    selector.matchExpressions = [];
    expressions.forEach((entry, index) => {
      const expression = parseExpression(entry, `${path}.matchExpressions[${index}]`, problems);
      if (expression) selector.matchExpressions!.push(expression);
    });
  }
  return selector;
}

function parseExpression(value: unknown, path: string, problems: Problems): NonNullable<LabelSelector["matchExpressions"]>[number] | undefined {
  const object = readObject(value, path, problems);
  if (!object) {
    if (value === undefined || value === null) problems.push(`${path} is empty`);
    return undefined;
  }
  const { key, operator } = object;
  if (typeof key !== "string" || !isLabelKey(key)) {
    problems.push(`${path}.key ${JSON.stringify(key ?? null)} is not a label key`);
    return undefined;
  }
  if (typeof operator !== "string" || !OPERATORS.includes(operator as LabelOperator)) {
    problems.push(`${path}.operator ${JSON.stringify(operator ?? null)} is not In, NotIn, Exists or DoesNotExist`);
    return undefined;
  }
  const valuesPath = `${path}.values`;
  const values = readList(object.values, valuesPath, problems);
  const strings: string[] = [];
  values.forEach((entry, index) => {
    if (typeof entry !== "string" || !isLabelValue(entry)) problems.push(`${valuesPath}[${index}] ${JSON.stringify(entry)} is not a label value`);
    else strings.push(entry);
  });
  const needsValues = operator === "In" || operator === "NotIn";
  if (needsValues && values.length === 0) {
    problems.push(`${valuesPath} is empty: ${operator} needs values`);
    return undefined;
  }
  if (!needsValues && values.length > 0) {
    problems.push(`${valuesPath} must be empty for ${operator}`);
    return undefined;
  }
  return needsValues ? { key, operator: operator as LabelOperator, values: strings } : { key, operator: operator as LabelOperator };
}

export type LabelMatcher = (labels: Record<string, string>) => boolean;

/** The selector as a predicate over labels (a NotIn or In value list becomes a set once, not per call). */
export function compileSelector(selector: LabelSelector): LabelMatcher {
  const labels = Object.entries(selector.matchLabels ?? {});
  const expressions = (selector.matchExpressions ?? []).map((e) => ({ key: e.key, operator: e.operator, values: new Set(e.values ?? []) }));
  if (labels.length === 0 && expressions.length === 0) return () => true;
  return (have) => {
    for (const [key, value] of labels) {
      if (have[key] !== value) return false;
    }
    for (const { key, operator, values } of expressions) {
      const value = Object.hasOwn(have, key) ? have[key] : undefined;
      switch (operator) {
        case "In":
          if (value === undefined || !values.has(value)) return false;
          break;
        case "NotIn":
          if (value !== undefined && values.has(value)) return false;
          break;
        case "Exists":
          if (value === undefined) return false;
          break;
        case "DoesNotExist":
          if (value !== undefined) return false;
          break;
      }
    }
    return true;
  };
}

/** Whether `labels` satisfy `selector`. */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  return compileSelector(selector)(labels);
}

const keys = new WeakMap<LabelSelector, string>();

/**
 * A text equal for selectors that mean the same (keys sorted, values sorted and deduplicated): the key under which
 * the compiler remembers what a selector matched, so that 10,000 policies naming the same few selectors cost
 * a few selector evaluations, not 10,000.
 */
export function selectorKey(selector: LabelSelector): string {
  let key = keys.get(selector);
  if (key === undefined) {
    const labels = Object.entries(selector.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const expressions = (selector.matchExpressions ?? [])
      .map((e) => [e.key, e.operator, [...new Set(e.values ?? [])].sort()] as const)
      .map((e) => JSON.stringify(e))
      .sort();
    key = JSON.stringify([labels, [...new Set(expressions)]]);
    keys.set(selector, key);
  }
  return key;
}
