// ip-masq for the whole pod network, in one nftables table `inet weft` (ARCHITECTURE.md "The agent does the
// masquerade"). The CNI plugin installs no per-pod NAT, so a missed DEL cannot leak rules.
//
//   postrouting (nat):  kube-proxy-marked (0x4000)                          → return (kube-proxy masquerades it)
//                       pod network → cluster network                       → return (pods see pod addresses)
//                       pod network → NonMasqueradeCIDRs (link-local…)      → return
//                       pod network → multicast                             → return (as flannel)
//                       pod network → anywhere else                         → masquerade fully-random
//   forward (filter):   marked WEFT_EGRESS_PENDING_MARK, not to the pod network → drop (an egress NetworkPolicy
//                       denied it, and DNAT did not make it a pod's connection: native/bpf/weft.h)
//                       to or from the pod network                          → accept
//
// The table is replaced atomically: the script nft reads declares the table (so that deleting it cannot fail),
// deletes it, and declares it again with its chains, all in one transaction. A script that fails anywhere
// changes nothing. (nft 1.0.6, Debian 12's, has no `destroy table`.) nft runs with an argv and the script on
// stdin, never through a shell.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { parseCidr, type Cidr, type IpFamily } from "../native/addresses";
import { KUBE_PROXY_MASQ_MARK, WEFT_EGRESS_PENDING_MARK } from "../native/marks";
import type { Logger } from "./log";
import type { NetworkConfig } from "./model";
import { MasqError } from "./errors";

export const MASQ_TABLE_FAMILY = "inet";
export const MASQ_TABLE = "weft";
const MULTICAST: Record<IpFamily, string> = { 4: "224.0.0.0/4", 6: "ff00::/8" };
const TABLE = `${MASQ_TABLE_FAMILY} ${MASQ_TABLE}`;
const DEFAULT_TIMEOUT_MS = 10_000;

interface Chain {
  name: string;
  header: string;
  rules: string[];
}

/** The table's chains and rules for `config`. Throws MasqError for a CIDR that is not one (never rendered). */
function masqChains(config: NetworkConfig): Chain[] {
  const nonMasquerade = config.nonMasqueradeCidrs.map((text) => cidr(text, "NonMasqueradeCIDRs"));
  const postrouting: string[] = [
    `meta mark & ${hex(KUBE_PROXY_MASQ_MARK)} == ${hex(KUBE_PROXY_MASQ_MARK)} return comment "kube-proxy masquerades marked traffic"`,
  ];
  const forward: string[] = [];
  const pending = `meta mark & ${hex(WEFT_EGRESS_PENDING_MARK)} == ${hex(WEFT_EGRESS_PENDING_MARK)}`;
  for (const [text, family] of [[config.network, 4], [config.ipv6Network, 6]] as const) {
    if (text === undefined) continue;
    const network = cidr(text, family === 4 ? "Network" : "IPv6Network");
    if (network.family !== family) throw new MasqError(`Cannot render masquerade rules: ${text} is not an IPv${family} network`);
    const ip = family === 4 ? "ip" : "ip6";
    const pods = `${ip} saddr ${network.network}`;
    postrouting.push(`${pods} ${ip} daddr ${network.network} return comment "pod to pod"`);
    const destinations = nonMasquerade.filter((c) => c.family === family).map((c) => c.network);
    if (destinations.length > 0) {
      postrouting.push(`${pods} ${ip} daddr { ${destinations.join(", ")} } return comment "to non-masquerade destinations"`);
    }
    postrouting.push(`${pods} ${ip} daddr ${MULTICAST[family]} return comment "multicast"`);
    postrouting.push(`${pods} masquerade fully-random comment "pod to outside the cluster"`);
    forward.push(`${pending} ${ip} daddr != ${network.network} drop comment "egress denied by NetworkPolicy"`);
    forward.push(`${ip} saddr ${network.network} accept comment "from pods"`);
    forward.push(`${ip} daddr ${network.network} accept comment "to pods"`);
  }
  return [
    { name: "postrouting", header: "type nat hook postrouting priority srcnat; policy accept;", rules: postrouting },
    { name: "forward", header: "type filter hook forward priority filter; policy accept;", rules: forward },
  ];
}

/**
 * The nft script that replaces table `inet weft` with the rules for `config`. The table's comment carries a
 * digest of its rules, which checkMasq compares.
 */
export function renderMasqRules(config: NetworkConfig): string {
  const chains = masqChains(config);
  const body = chains
    .map((chain) => [`\tchain ${chain.name} {`, `\t\t${chain.header}`, ...chain.rules.map((rule) => `\t\t${rule}`), "\t}"].join("\n"))
    .join("\n\n");
  return [
    `# weft ip-masq: replaces the whole table in one transaction`,
    `table ${TABLE}`,
    `delete table ${TABLE}`,
    `table ${TABLE} {`,
    `\tcomment "${masqDigest(body)}"`,
    body,
    `}`,
    ``,
  ].join("\n");
}

function masqDigest(body: string): string {
  return `weft:${createHash("sha256").update(body).digest("hex").slice(0, 16)}`;
}

export interface NftOptions {
  /** The command to run nft with, as argv; default ["nft"]. Tests use ["ip", "netns", "exec", NAME, "nft"]. */
  nft?: string[];
  /** Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Replaces table `inet weft` with the rules for `config`, atomically. Throws MasqError (nothing changed). */
export async function applyMasq(config: NetworkConfig, options: NftOptions = {}): Promise<void> {
  await runNft(["-f", "-"], renderMasqRules(config), options);
}

/** Deletes table `inet weft`; nothing when it does not exist. */
export async function removeMasq(options: NftOptions = {}): Promise<void> {
  await runNft(["-f", "-"], `table ${TABLE}\ndelete table ${TABLE}\n`, options);
}

/** The table as `nft list table inet weft` shows it (for the debug state), or undefined when it does not exist. */
export async function readMasq(options: NftOptions = {}): Promise<string | undefined> {
  try {
    return await runNft(["list", "table", MASQ_TABLE_FAMILY, MASQ_TABLE], undefined, options);
  } catch (error) {
    if (error instanceof MasqError && /No such file or directory/.test(error.message)) return undefined;
    throw error;
  }
}

export interface MasqCheck {
  inPlace: boolean;
  /** What differs, one line each: "table inet weft does not exist", "chain forward has 1 rules, expected 2". */
  problems: string[];
}

/**
 * Whether table `inet weft` holds the rules for `config`: its digest comment matches, and each chain exists
 * with as many rules as rendered (a rule deleted by hand shows). Re-apply when not.
 */
export async function checkMasq(config: NetworkConfig, options: NftOptions = {}): Promise<MasqCheck> {
  const text = await readMasq(options);
  if (text === undefined) return { inPlace: false, problems: [`table ${TABLE} does not exist`] };
  const problems: string[] = [];
  const expected = renderMasqRules(config);
  const digest = /^\tcomment "(weft:[0-9a-f]+)"$/m.exec(expected)?.[1];
  const found = /^\s*comment "([^"]*)"\s*$/m.exec(text)?.[1];
  if (found !== digest) problems.push(`table ${TABLE} has digest ${found ?? "none"}, expected ${digest} (other rules or other config)`);

  const json = await runNft(["-j", "list", "table", MASQ_TABLE_FAMILY, MASQ_TABLE], undefined, options);
  const items = (JSON.parse(json) as { nftables?: Record<string, { chain?: string; name?: string }>[] }).nftables ?? [];
  for (const chain of masqChains(config)) {
    if (!items.some((item) => item.chain?.name === chain.name)) {
      problems.push(`chain ${chain.name} is missing`);
      continue;
    }
    const count = items.filter((item) => item.rule?.chain === chain.name).length;
    if (count !== chain.rules.length) problems.push(`chain ${chain.name} has ${count} rules, expected ${chain.rules.length}`);
  }
  return { inPlace: problems.length === 0, problems };
}

/** Runs nft with `args` (and `input` on stdin); resolves with its stdout, rejects with MasqError naming stderr. */
function runNft(args: string[], input: string | undefined, options: NftOptions): Promise<string> {
  const [command, ...prefix] = options.nft ?? ["nft"];
  if (command === undefined) return Promise.reject(new MasqError("Cannot run nft: the nft command is empty"));
  const argv = [...prefix, ...args];
  const shown = [command, ...argv].join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      stdio: ["pipe", "pipe", "pipe"],
      timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (error) => reject(new MasqError(`Cannot run ${shown}: ${error.message}`, { cause: error })));
    child.on("close", (code, signal) => {
      if (code === 0) {
        resolve(Buffer.concat(stdout).toString("utf8"));
        return;
      }
      const message = Buffer.concat(stderr).toString("utf8").trim().split("\n").slice(0, 3).join(" | ");
      const status = code === null ? `killed by ${signal}` : `exit status ${code}`;
      reject(new MasqError(`${shown} failed (${status}): ${message || "no error output"}`));
    });
    child.stdin.on("error", () => {
      // nft exited before reading all of stdin: its exit status and stderr tell why.
    });
    child.stdin.end(input ?? "");
  });
}

function cidr(text: string, field: string): Cidr {
  const parsed = parseCidr(text);
  if (!parsed) throw new MasqError(`Cannot render masquerade rules: ${field} ${JSON.stringify(text)} is not a CIDR`);
  return parsed;
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

export interface MasqStatus {
  enabled: boolean;
  inPlace: boolean;
  problems: string[];
  /** How often the agent (re)applied the table since start. */
  applied: number;
}

/**
 * The agent's side of the masquerade: at start and on resyncs, the table is applied when it is not in place, or
 * removed when masquerade is off. Errors are kept in the status (and reported through `onError`), never thrown.
 */
export class MasqSync {
  readonly #network: NetworkConfig;
  readonly #enabled: boolean;
  readonly #nft: NftOptions;
  readonly #log: Logger;
  readonly #onError: (message: string) => void;
  #status: MasqStatus;

  constructor(options: { network: NetworkConfig; enabled: boolean; nft?: string[]; signal: AbortSignal; logger: Logger; onError(message: string): void }) {
    this.#network = options.network;
    this.#enabled = options.enabled;
    this.#nft = { signal: options.signal, ...(options.nft ? { nft: options.nft } : {}) };
    this.#log = options.logger;
    this.#onError = options.onError;
    this.#status = { enabled: options.enabled, inPlace: false, problems: [], applied: 0 };
  }

  /** In place, or masquerade off. */
  get ok(): boolean {
    return !this.#status.enabled || this.#status.inPlace;
  }

  status(): MasqStatus {
    return { ...this.#status, problems: [...this.#status.problems] };
  }

  async sync(): Promise<void> {
    const applied = this.#status.applied;
    try {
      if (!this.#enabled) {
        if ((await readMasq(this.#nft)) !== undefined) await removeMasq(this.#nft);
        this.#status = { enabled: false, inPlace: true, problems: [], applied };
        return;
      }
      const check = await checkMasq(this.#network, this.#nft);
      if (check.inPlace) {
        this.#status = { enabled: true, inPlace: true, problems: [], applied };
        return;
      }
      this.#log.info("Applying the masquerade rules", { problems: check.problems });
      await applyMasq(this.#network, this.#nft);
      const after = await checkMasq(this.#network, this.#nft);
      this.#status = { enabled: true, inPlace: after.inPlace, problems: after.problems, applied: applied + 1 };
    } catch (error) {
      if (this.#nft.signal?.aborted) return;
      const message = error instanceof Error ? error.message : String(error);
      this.#status = { enabled: this.#enabled, inPlace: false, problems: [message], applied: this.#status.applied };
      this.#onError(`masq: ${message}`);
      this.#log.error("Cannot apply the masquerade rules", { error });
    }
  }
}
