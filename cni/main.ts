// The `weft` CNI plugin's entry point: env + stdin → command → stdout. The only place that turns an error into
// the spec's JSON and the only place that calls process.exit. Loads nothing a command does not need: start-up
// is most of an ADD's cost.
import { readSync, writeSync } from "node:fs";
import { runAdd } from "./commands/add";
import { runCheck } from "./commands/check";
import { runDel } from "./commands/del";
import { runGc } from "./commands/gc";
import { runStatus } from "./commands/status";
import { runVersion } from "./commands/version";
import { parseCniEnv } from "./env";
import { toErrorJson } from "./spec/errors";
import { version } from "./version-string";

/** Drains stdin (a runtime writes the whole config before waiting on us); size limits are the parser's. */
function readStdin(): Buffer {
  const chunks: Buffer[] = [];
  const buffer = Buffer.allocUnsafe(1 << 16);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buffer, 0, buffer.length, null);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") continue;
      if (code === "EOF" || code === "EBADF") break;
      throw error;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

/** Best effort: the version the caller asked for, so even an error answers in its dialect. */
function requestedVersion(stdin: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(stdin.toString("utf8")) as { cniVersion?: unknown };
    return typeof parsed.cniVersion === "string" ? parsed.cniVersion : undefined;
  } catch {
    return undefined;
  }
}

function dispatch(stdin: Buffer): unknown {
  const env = parseCniEnv(process.env);
  switch (env.command) {
    case "ADD":
      return runAdd(env, stdin);
    case "DEL":
      return runDel(env, stdin);
    case "CHECK":
      return runCheck(env, stdin);
    case "GC":
      return runGc(env, stdin);
    case "STATUS":
      return runStatus(env, stdin);
    case "VERSION":
      return runVersion(stdin);
  }
}

function main(): number {
  if (process.argv.includes("--version") || process.argv.includes("-v")) {
    writeSync(1, `weft ${version} (CNI plugin, spec 1.1)\n`);
    return 0;
  }
  let stdin: Buffer = Buffer.alloc(0);
  try {
    stdin = process.env.CNI_COMMAND ? readStdin() : stdin;
    const result = dispatch(stdin);
    if (result !== undefined) writeSync(1, JSON.stringify(result));
    return 0;
  } catch (error) {
    writeSync(1, JSON.stringify(toErrorJson(error, requestedVersion(stdin))));
    if (process.env.WEFT_DEBUG) process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}

process.exit(main());
