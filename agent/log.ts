// The agent's logs: one JSON object per line on stderr, {"time","level","msg",...fields}. Never secrets.
//
//   log.info("Node source synced", { source: "kube", nodes: 12 });
//   const sourceLog = log.with({ source: "etcd" });   // fields added to every line
//
// WEFT_LOG_LEVEL (debug, info, warn, error; default info) sets the threshold.

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: LogFields): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let threshold: number = RANK[parseLevel(process.env.WEFT_LOG_LEVEL) ?? "info"];
const sink = (line: string): void => void process.stderr.write(line);

function parseLevel(text: string | undefined): LogLevel | undefined {
  const level = text?.trim().toLowerCase();
  return level !== undefined && Object.hasOwn(RANK, level) ? (level as LogLevel) : undefined;
}

/** Sets the threshold below which lines are dropped. */
export function setLogLevel(level: LogLevel): void {
  threshold = RANK[level];
}

function write(level: LogLevel, msg: string, bound: LogFields, fields: LogFields | undefined): void {
  if (RANK[level] < threshold) return;
  const entry: LogFields = { time: new Date().toISOString(), level, msg, ...bound };
  if (fields) for (const [key, value] of Object.entries(fields)) entry[key] = serialisable(value);
  let line: string;
  try {
    line = JSON.stringify(entry);
  } catch {
    line = JSON.stringify({ time: entry.time, level, msg, note: "fields were not serialisable" });
  }
  sink(`${line}\n`);
}

/** Errors become their message (and code); everything else is left to JSON.stringify. */
function serialisable(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined ? value.message : { message: value.message, code };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

function makeLogger(bound: LogFields): Logger {
  return {
    debug: (msg, fields) => write("debug", msg, bound, fields),
    info: (msg, fields) => write("info", msg, bound, fields),
    warn: (msg, fields) => write("warn", msg, bound, fields),
    error: (msg, fields) => write("error", msg, bound, fields),
    with: (fields) => makeLogger({ ...bound, ...fields }),
  };
}

export const log: Logger = makeLogger({});
