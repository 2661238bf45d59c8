// The agent's loader: Debian's libbpf (package libbpf1) through koffi, bound on first use. libbpf does what a
// hand-written loader would get wrong: ELF and BTF parsing, relocations, map creation and reuse of pinned maps
// (LIBBPF_PIN_BY_NAME), program loading with the verifier's log on failure. The plugin never loads this file.
//
// libbpf's messages go through one print callback (set once per process): while a call runs they are collected,
// so that its failure carries libbpf's reason and the verifier's log; all of them can also be sent to the agent's
// logger (setLibbpfLogger).
import { KernelError } from "../errors";
import { loadKoffi, type Koffi } from "../koffi-loader";

const LIBBPF_FILE = "libbpf.so.1";
const LIBBPF_PACKAGE = "libbpf1";

/** enum libbpf_print_level */
const LEVELS = ["warn", "info", "debug"] as const;
export type LibbpfLogLevel = (typeof LEVELS)[number];
const DEBUG = 2;
const ENOENT = 2;

/** struct bpf_object_open_opts of libbpf 1.1 (libbpf.h): its size, and the offsets of the fields set here. */
const OPEN_OPTS_SIZE = 80;
const OPEN_OPTS_OBJECT_NAME = 8;
const OPEN_OPTS_PIN_ROOT_PATH = 24;

/** va_list's size, to copy it (va_copy) so that a message can be measured, then formatted. */
const VA_LIST_SIZE: Partial<Record<string, number>> = { x64: 24, arm64: 32 };

type Pointer = bigint;
type Fn = (...args: unknown[]) => unknown;

/** koffi calls native/koffi-loader's `Koffi` interface does not declare. */
interface KoffiCallbacks {
  address(value: unknown): bigint;
  proto(result: string, args: string[]): unknown;
  pointer(type: unknown): unknown;
  register(callback: (...args: never[]) => unknown, type: unknown): Pointer;
  view(pointer: unknown, length: number): ArrayBuffer;
  decode: { string(pointer: unknown): string };
}

interface Libbpf {
  openMem(buf: Buffer, size: number, opts: Buffer): Pointer | null;
  load(obj: Pointer): number;
  close(obj: Pointer): void;
  findProgram(obj: Pointer, name: string): Pointer | null;
  nextProgram(obj: Pointer, prev: Pointer | null): Pointer | null;
  programName(prog: Pointer): string;
  programFd(prog: Pointer): number;
  pinProgram(prog: Pointer, path: string): number;
  unpinProgram(prog: Pointer, path: string): number;
  findMap(obj: Pointer, name: string): Pointer | null;
  nextMap(obj: Pointer, prev: Pointer | null): Pointer | null;
  mapName(map: Pointer): string;
  mapFd(map: Pointer): number;
  setMapPinPath(map: Pointer, path: string): number;
  mapPinPath(map: Pointer): string | null;
  pinMap(map: Pointer, path: string): number;
  unpinMap(map: Pointer, path: string | null): number;
  strerror(errno: number): string;
  errno(): number;
  address(value: Buffer): bigint;
}

let bound: Libbpf | undefined;
let collected: string[] | undefined;
let logger: ((level: LibbpfLogLevel, message: string) => void) | undefined;
let loggerWantsDebug = false;

function libbpf(): Libbpf {
  if (bound) return bound;
  const koffi = loadKoffi() as Koffi & KoffiCallbacks;
  let lib: ReturnType<Koffi["load"]>;
  try {
    lib = koffi.load(LIBBPF_FILE);
  } catch (error) {
    throw new Error(`Cannot load ${LIBBPF_FILE} (install the ${LIBBPF_PACKAGE} package): ${(error as Error).message}`, { cause: error });
  }
  const f = (signature: string) => lib.func(signature) as Fn;
  const libc = koffi.load("libc.so.6");
  const vsnprintf = libc.func("int vsnprintf(void *buf, size_t size, void *fmt, void *ap)") as (...args: unknown[]) => number;
  const strerror = f("int libbpf_strerror(int err, void *buf, size_t size)");
  const vaListSize = VA_LIST_SIZE[process.arch];

  // int (*)(enum libbpf_print_level, const char *fmt, va_list): va_list travels as a pointer on x86-64 (an array
  // type) and on arm64 (a struct over 16 bytes), so vsnprintf can take it as it came.
  // Elsewhere the format string alone, unformatted, rather than a guess at how va_list is passed.
  const format = (fmt: Pointer, ap: Pointer): string => {
    if (vaListSize === undefined) return koffi.decode.string(fmt);
    const copy = Buffer.from(new Uint8Array(koffi.view(ap, vaListSize)));
    const n = vsnprintf(null, 0, fmt, copy);
    const out = Buffer.alloc(n + 1);
    vsnprintf(out, out.length, fmt, ap);
    return out.toString("utf8", 0, n);
  };
  const print = (level: number, fmt: Pointer, ap: Pointer): number => {
    if (level >= DEBUG && !(logger && loggerWantsDebug)) return 0;
    try {
      const message = format(fmt, ap).replace(/\n$/, "");
      if (level < DEBUG) collected?.push(message);
      logger?.(LEVELS[level] ?? "debug", message);
    } catch {
      // an exception must not unwind through libbpf
    }
    return 0;
  };
  const printFn = koffi.register(print, koffi.pointer(koffi.proto("int", ["int", "void *", "void *"])));
  f("void *libbpf_set_print(void *fn)")(printFn);

  bound = {
    openMem: f("void *bpf_object__open_mem(const void *buf, size_t size, const void *opts)") as Libbpf["openMem"],
    load: f("int bpf_object__load(void *obj)") as Libbpf["load"],
    close: f("void bpf_object__close(void *obj)") as Libbpf["close"],
    findProgram: f("void *bpf_object__find_program_by_name(void *obj, const char *name)") as Libbpf["findProgram"],
    nextProgram: f("void *bpf_object__next_program(void *obj, void *prev)") as Libbpf["nextProgram"],
    programName: f("const char *bpf_program__name(void *prog)") as Libbpf["programName"],
    programFd: f("int bpf_program__fd(void *prog)") as Libbpf["programFd"],
    pinProgram: f("int bpf_program__pin(void *prog, const char *path)") as Libbpf["pinProgram"],
    unpinProgram: f("int bpf_program__unpin(void *prog, const char *path)") as Libbpf["unpinProgram"],
    findMap: f("void *bpf_object__find_map_by_name(void *obj, const char *name)") as Libbpf["findMap"],
    nextMap: f("void *bpf_object__next_map(void *obj, void *prev)") as Libbpf["nextMap"],
    mapName: f("const char *bpf_map__name(void *map)") as Libbpf["mapName"],
    mapFd: f("int bpf_map__fd(void *map)") as Libbpf["mapFd"],
    setMapPinPath: f("int bpf_map__set_pin_path(void *map, const char *path)") as Libbpf["setMapPinPath"],
    mapPinPath: f("const char *bpf_map__pin_path(void *map)") as Libbpf["mapPinPath"],
    pinMap: f("int bpf_map__pin(void *map, const char *path)") as Libbpf["pinMap"],
    unpinMap: f("int bpf_map__unpin(void *map, const char *path)") as Libbpf["unpinMap"],
    strerror: (errno) => {
      const out = Buffer.alloc(256);
      strerror(errno, out, out.length);
      return out.toString("utf8", 0, Math.max(0, out.indexOf(0)));
    },
    errno: () => koffi.errno(),
    address: (value) => koffi.address(value),
  };
  return bound;
}

/**
 * Sends every message of libbpf to `log` (undefined: none). Debug messages (section by section, relocation by
 * relocation) only with `debug`.
 */
export function setLibbpfLogger(log: ((level: LibbpfLogLevel, message: string) => void) | undefined, options: { debug?: boolean } = {}): void {
  logger = log;
  loggerWantsDebug = options.debug ?? false;
}

// The buffers a call's arguments point into, held while it runs: an address is a plain integer, which would not
// keep them from being collected.
const inFlight: (Buffer | undefined)[] = [];

/** Collects libbpf's warnings and notes while `fn` runs. */
function collecting<T>(fn: () => T, buffers: (Buffer | undefined)[] = []): { result: T; log: string } {
  const messages: string[] = [];
  collected = messages;
  inFlight.push(...buffers);
  try {
    return { result: fn(), log: messages.join("\n") };
  } finally {
    collected = undefined;
    inFlight.length = 0;
  }
}

const MESSAGE_LOG_LIMIT = 16_000;

/**
 * A libbpf call failed. The message gives the call, the errno with libbpf's words for it, then what libbpf said
 * meanwhile: the verifier's log when a program was refused (shortened in the middle if very long; its end has
 * the reason). `log` holds all of it.
 */
export class LibbpfError extends KernelError {
  readonly log: string;
  constructor(operation: string, errno: number, reason: string, log: string) {
    super(operation, errno);
    this.name = "LibbpfError";
    this.log = log;
    const shown = log.length <= MESSAGE_LOG_LIMIT
      ? log
      : `${log.slice(0, 4000)}\n[… ${log.length - MESSAGE_LOG_LIMIT} characters left out …]\n${log.slice(-(MESSAGE_LOG_LIMIT - 4000))}`;
    this.message = `${this.message} (${reason})${shown ? `\n${shown}` : ""}`;
  }
}

/** Runs a libbpf call that returns -errno on failure (libbpf 1.x), with its messages kept for the error. */
function call(operation: string, fn: (lib: Libbpf) => number): number {
  const lib = libbpf();
  const { result, log } = collecting(() => fn(lib));
  if (result < 0) throw new LibbpfError(operation, -result, lib.strerror(-result), log);
  return result;
}

export interface BpfObjectOptions {
  /** Names the object in libbpf's messages and in errors. */
  name: string;
  /**
   * Where maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)` are pinned, as <pinRoot>/<map name>: load()
   * reuses a pinned map found there if it matches the declaration, else creates and pins it. libbpf's default,
   * /sys/fs/bpf, if unset.
   */
  pinRoot?: string;
}

/**
 * One BPF object file: open() parses it, load() creates its maps and loads its programs. The fds it hands out
 * belong to the object (close() closes them); what is pinned stays after close().
 */
export class BpfObject {
  readonly name: string;
  #obj: Pointer | null;

  private constructor(name: string, obj: Pointer) {
    this.name = name;
    this.#obj = obj;
  }

  static open(bytes: Buffer, options: BpfObjectOptions): BpfObject {
    const lib = libbpf();
    const name = Buffer.from(`${options.name}\0`);
    const pinRoot = options.pinRoot === undefined ? undefined : Buffer.from(`${options.pinRoot}\0`);
    const opts = Buffer.alloc(OPEN_OPTS_SIZE);
    opts.writeBigUInt64LE(BigInt(OPEN_OPTS_SIZE), 0);
    opts.writeBigUInt64LE(lib.address(name), OPEN_OPTS_OBJECT_NAME);
    if (pinRoot) opts.writeBigUInt64LE(lib.address(pinRoot), OPEN_OPTS_PIN_ROOT_PATH);
    // libbpf copies the names, and is done with the bytes once open returns.
    let errno = 0;
    const { result: obj, log } = collecting(() => {
      const obj = lib.openMem(bytes, bytes.length, opts);
      if (!obj) errno = lib.errno();
      return obj;
    }, [bytes, name, pinRoot]);
    if (!obj) throw new LibbpfError(`bpf_object__open_mem(${options.name})`, errno, lib.strerror(errno), log);
    return new BpfObject(options.name, obj);
  }

  /** Creates (or reuses pinned) maps and loads every program. A LibbpfError says why not. */
  load(): void {
    const obj = this.#handle();
    call(`bpf_object__load(${this.name})`, (lib) => lib.load(obj));
  }

  programNames(): string[] {
    const lib = libbpf();
    const obj = this.#handle();
    const names: string[] = [];
    for (let prog = lib.nextProgram(obj, null); prog; prog = lib.nextProgram(obj, prog)) names.push(lib.programName(prog));
    return names;
  }

  mapNames(): string[] {
    const lib = libbpf();
    const obj = this.#handle();
    const names: string[] = [];
    for (let map = lib.nextMap(obj, null); map; map = lib.nextMap(obj, map)) names.push(lib.mapName(map));
    return names;
  }

  /** The loaded program's fd, owned by this object. */
  programFd(name: string): number {
    return call(`bpf_program__fd(${this.name}/${name})`, (lib) => lib.programFd(this.#program(name)));
  }

  /** Pins the loaded program at `path` (on a bpffs; the parent directory is created). EEXIST if taken. */
  pinProgram(name: string, path: string): void {
    call(`bpf_program__pin(${this.name}/${name}, ${path})`, (lib) => lib.pinProgram(this.#program(name), path));
  }

  unpinProgram(name: string, path: string): void {
    call(`bpf_program__unpin(${this.name}/${name}, ${path})`, (lib) => lib.unpinProgram(this.#program(name), path));
  }

  /** The map's fd, owned by this object. */
  mapFd(name: string): number {
    return call(`bpf_map__fd(${this.name}/${name})`, (lib) => lib.mapFd(this.#map(name)));
  }

  /** Before load(): where this map is to be pinned (or its pin reused), whatever its declaration says. */
  setMapPinPath(name: string, path: string): void {
    call(`bpf_map__set_pin_path(${this.name}/${name}, ${path})`, (lib) => lib.setMapPinPath(this.#map(name), path));
  }

  /** Where the map is (to be) pinned, if anywhere. */
  mapPinPath(name: string): string | undefined {
    return libbpf().mapPinPath(this.#map(name)) ?? undefined;
  }

  /** Pins the loaded map at `path`. */
  pinMap(name: string, path: string): void {
    call(`bpf_map__pin(${this.name}/${name}, ${path})`, (lib) => lib.pinMap(this.#map(name), path));
  }

  /** Removes the map's pin: at `path`, or where it was pinned. */
  unpinMap(name: string, path?: string): void {
    call(`bpf_map__unpin(${this.name}/${name}, ${path ?? "its pin path"})`, (lib) => lib.unpinMap(this.#map(name), path ?? null));
  }

  /** Closes the object's fds: what is neither pinned nor attached by a link is freed. */
  close(): void {
    if (this.#obj === null) return;
    libbpf().close(this.#obj);
    this.#obj = null;
  }

  #handle(): Pointer {
    if (this.#obj === null) throw new Error(`BPF object ${this.name} is closed`);
    return this.#obj;
  }

  #program(name: string): Pointer {
    const prog = libbpf().findProgram(this.#handle(), name);
    if (!prog) throw new LibbpfError(`bpf_object__find_program_by_name(${this.name}, ${name})`, ENOENT, "no program of that name", "");
    return prog;
  }

  #map(name: string): Pointer {
    const map = libbpf().findMap(this.#handle(), name);
    if (!map) throw new LibbpfError(`bpf_object__find_map_by_name(${this.name}, ${name})`, ENOENT, "no map of that name", "");
    return map;
  }
}
