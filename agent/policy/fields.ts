// Reading fields of a Kubernetes object that arrived as untyped JSON (an informer's object, a YAML document):
// each reader checks the shape, and what is wrong goes into a list of problems named by the field's path
// ("spec.ingress[0].from[1].ipBlock.cidr"), so that one object's message names every problem at once.

export type Problems = string[];

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A list field: absent or null = empty, as the API server decodes it; anything else but a list is a problem. */
export function readList(value: unknown, path: string, problems: Problems): unknown[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value;
  problems.push(`${path} is not a list`);
  return [];
}

/** An object field: absent or null = undefined; anything else but a mapping is a problem. */
export function readObject(value: unknown, path: string, problems: Problems): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (isRecord(value)) return value;
  problems.push(`${path} is not an object`);
  return undefined;
}

/** A string-to-string map (labels, matchLabels): absent or null = empty. */
export function readStringMap(value: unknown, path: string, problems: Problems): Record<string, string> {
  const map = readObject(value, path, problems);
  const strings: Record<string, string> = {};
  for (const [key, entry] of Object.entries(map ?? {})) {
    if (typeof entry === "string") strings[key] = entry;
    else problems.push(`${path}[${JSON.stringify(key)}] ${JSON.stringify(entry)} is not a string`);
  }
  return strings;
}

/** The object's name and namespace ("default" when it has none, as kubectl apply places it). */
export function readObjectName(
  object: unknown, namespaced: boolean,
): { name: string; namespace: string } | { problem: string } {
  if (!isRecord(object)) return { problem: "is not an object" };
  const metadata = object.metadata;
  if (!isRecord(metadata) || typeof metadata.name !== "string" || metadata.name === "") {
    return { problem: "has no metadata.name" };
  }
  if (!namespaced) return { name: metadata.name, namespace: "" };
  const namespace = metadata.namespace ?? "default";
  if (typeof namespace !== "string" || namespace === "") return { problem: `metadata.namespace ${JSON.stringify(namespace)} is not a name` };
  return { name: metadata.name, namespace };
}

/** "kind ns/name: problem; problem", the one line an operator reads in the log and in status. */
export function describeProblems(object: string, problems: Problems): string {
  return `${object}: ${problems.join("; ")}`;
}
