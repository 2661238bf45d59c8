// The file source's reading of one file: the NetworkPolicy, Namespace and Pod objects in it, in YAML (one or
// more "---" separated documents) or JSON, as `kubectl get -o yaml|json` writes them, including a `List` (or
// `NetworkPolicyList`, `PodList`, …) with `items`. Nothing is validated here beyond the envelope: the store
// parses each object and names what is wrong with it. A document that is not valid YAML or JSON is an error that
// names the file, the document and the line; a kind policy does not read is skipped with a note.
import { parseAllDocuments } from "yaml";
import { isRecord } from "./fields";

export type PolicyObjectKind = "NetworkPolicy" | "Namespace" | "Pod";

export interface PolicyDocument {
  kind: PolicyObjectKind;
  object: Record<string, unknown>;
  /** Where it came from: "policies.yaml#2" (the second document), "all.yaml#1 items[3]". */
  origin: string;
}

export interface ParsedDocuments {
  objects: PolicyDocument[];
  /** Documents that could not be read at all; their objects are unknown. */
  errors: string[];
  /** Documents skipped on purpose (another kind). */
  notes: string[];
}

const KINDS: readonly string[] = ["NetworkPolicy", "Namespace", "Pod"];

export function parsePolicyDocuments(text: string, fileName: string): ParsedDocuments {
  const parsed: ParsedDocuments = { objects: [], errors: [], notes: [] };
  const json = readJson(text);
  if (json !== undefined) {
    readDocument(json.value, `${fileName}#1`, parsed);
    return parsed;
  }
  parseAllDocuments(text).forEach((document, i) => {
    const origin = `${fileName}#${i + 1}`;
    const error = document.errors[0];
    if (error) {
      // yaml's message is "<what> at line L, column C:" followed by an excerpt: its first line says it all.
      parsed.errors.push(`${fileName}: document ${i + 1} is not valid YAML: ${error.message.split("\n")[0]!.replace(/:$/, "")}`);
      return;
    }
    const value: unknown = document.toJS();
    if (value === null || value === undefined) return; // an empty document ("---" at the end)
    readDocument(value, origin, parsed);
  });
  return parsed;
}

/** JSON, read by JSON.parse (far faster than a YAML parser on a large `kubectl get -o json`); undefined if it is not. */
function readJson(text: string): { value: unknown } | undefined {
  const start = text.trimStart()[0];
  if (start !== "{" && start !== "[") return undefined;
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined; // YAML flow style, or broken: the YAML reader says which, with a line
  }
}

function readDocument(value: unknown, origin: string, parsed: ParsedDocuments, impliedKind?: string): void {
  if (!isRecord(value)) {
    parsed.errors.push(`${origin}: not a Kubernetes object (a mapping with kind, metadata, …)`);
    return;
  }
  const kind = value.kind ?? impliedKind;
  if (typeof kind !== "string" || kind === "") {
    parsed.errors.push(`${origin}: has no kind`);
    return;
  }
  if (kind === "List" || (kind.endsWith("List") && Array.isArray(value.items))) {
    if (!Array.isArray(value.items)) {
      parsed.errors.push(`${origin}: ${kind} has no items list`);
      return;
    }
    // The API's typed lists (PodList, …) leave out each item's kind; kubectl's List keeps it.
    const itemKind = kind === "List" ? undefined : kind.slice(0, -"List".length);
    value.items.forEach((item, i) => readDocument(item, `${origin} items[${i}]`, parsed, itemKind));
    return;
  }
  if (!KINDS.includes(kind)) {
    parsed.notes.push(`${origin}: kind ${kind} ignored (policy reads NetworkPolicy, Namespace and Pod)`);
    return;
  }
  parsed.objects.push({ kind: kind as PolicyObjectKind, object: value.kind === undefined ? { ...value, kind } : value, origin });
}
