// host-local's on-disk store, byte for byte, so that weft and host-local can share a data directory (a node moves
// from flannel to weft and keeps every allocation, and back):
//
//   <dataDir>/<network>/lock                  flock(LOCK_EX) around every operation
//   <dataDir>/<network>/<ip>                  one per reservation, created O_EXCL: "<containerID>\r\n<ifname>"
//                                             (files of old host-local versions hold only "<containerID>")
//   <dataDir>/<network>/last_reserved_ip.<n>  the address last reserved from range set n, no newline
//
// The file name of an address is Go's net.IP.String() of it (formatAddress). Everything is synchronous: the
// plugin is a short-lived process, and a synchronous body cannot let other work run while the lock is held.
import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync, type Dirent } from "node:fs";
import { join } from "node:path";
import { LOCK_EX, LOCK_UN, flock } from "../../native/libc";
import { ipFamily } from "../../native/addresses";
import { DEFAULT_DATA_DIR } from "./config";
import { IpamError } from "./errors";
import type { Owner, Reservation, Store } from "./store";
import { isSameOwner } from "./store";

const LOCK_FILE = "lock";
const LAST_RESERVED_PREFIX = "last_reserved_ip.";
const LINE_BREAK = "\r\n";

export interface DiskStoreOptions {
  /** Parent of the per-network directories. Default: host-local's, /var/lib/cni/networks. */
  dataDir?: string;
}

/** Whether a directory entry is a reservation: named by an address (node:net's rules, without loading node:net). */
function isAddressName(name: string): boolean {
  return ipFamily(name) !== 0;
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Replaces a small file's content in place: written over, then cut to length. The same file in the end as with
 * O_TRUNC, without the filesystem freeing its block and allocating another (a third of a reservation's cost).
 */
function overwriteFile(file: string, text: string): void {
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT, 0o644);
  try {
    const bytes = Buffer.from(text);
    for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written, bytes.length - written, written);
    ftruncateSync(fd, bytes.length);
  } finally {
    closeSync(fd);
  }
}

/** Reads a reservation file's content; both host-local formats. */
function parseReservationContent(content: string): Owner {
  const text = content.trim();
  const split = text.indexOf(LINE_BREAK);
  return split < 0 ? { id: text } : { id: text.slice(0, split), ifname: text.slice(split + LINE_BREAK.length) };
}

export class DiskStore implements Store {
  /** `<dataDir>/<network>`. */
  readonly dir: string;
  private lockFd: number | undefined;
  private lockDepth = 0;

  constructor(network: string, options: DiskStoreOptions = {}) {
    if (network === "" || network === "." || network === ".." || /[/\0]/.test(network)) {
      throw new IpamError("INVALID_CONFIG", `name: ${JSON.stringify(network)} cannot name a directory under the IPAM data dir`);
    }
    this.dir = join(options.dataDir || DEFAULT_DATA_DIR, network);
  }

  withLock<T>(fn: () => T): T {
    if (this.lockDepth > 0) {
      this.lockDepth++;
      try {
        return fn();
      } finally {
        this.lockDepth--;
      }
    }
    const fd = this.io(`Cannot open the lock file in ${this.dir}`, () => {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
      return openSync(this.path(LOCK_FILE), constants.O_RDONLY | constants.O_CREAT, 0o644);
    });
    try {
      this.io(`Cannot lock ${this.path(LOCK_FILE)}`, () => flock(fd, LOCK_EX));
      this.lockFd = fd;
      this.lockDepth = 1;
      return fn();
    } finally {
      this.lockDepth = 0;
      this.lockFd = undefined;
      try {
        flock(fd, LOCK_UN);
      } catch {
        // closing the descriptor below releases the lock anyway
      }
      closeSync(fd);
    }
  }

  /** True while this process holds the lock (for assertions in callers and tests). */
  get locked(): boolean {
    return this.lockFd !== undefined;
  }

  reserve(ip: string, owner: Required<Owner>, rangeSetIndex: number): boolean {
    const file = this.fileOf(ip);
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (error) {
      if (errorCode(error) === "EEXIST") return false;
      throw new IpamError("IO", `Cannot reserve ${ip} in ${this.dir}: ${(error as Error).message}`, { cause: error });
    }
    try {
      try {
        writeFileSync(fd, `${owner.id.trim()}${LINE_BREAK}${owner.ifname}`);
      } finally {
        closeSync(fd);
      }
      // Only a hint for round-robin; written in place like host-local does.
      overwriteFile(this.path(`${LAST_RESERVED_PREFIX}${rangeSetIndex}`), ip);
    } catch (error) {
      rmSync(file, { force: true });
      throw new IpamError("IO", `Cannot reserve ${ip} in ${this.dir}: ${(error as Error).message}`, { cause: error });
    }
    return true;
  }

  lastReservedIP(rangeSetIndex: number): string | undefined {
    try {
      const text = readFileSync(this.path(`${LAST_RESERVED_PREFIX}${rangeSetIndex}`), "utf8").trim();
      return text === "" ? undefined : text;
    } catch {
      // Missing or unreadable: allocation starts from the beginning of the range set, as host-local does.
      return undefined;
    }
  }

  release(ip: string, owner?: Owner): boolean {
    if (!isAddressName(ip)) return false;
    const file = this.fileOf(ip);
    return this.io(`Cannot release ${ip} in ${this.dir}`, () => {
      try {
        if (owner && !isSameOwner(parseReservationContent(readFileSync(file, "utf8")), owner)) return false;
        unlinkSync(file);
        return true;
      } catch (error) {
        if (errorCode(error) === "ENOENT") return false;
        throw error;
      }
    });
  }

  listReservations(): Reservation[] {
    return this.io(`Cannot list the reservations in ${this.dir}`, () => {
      let entries: Dirent[];
      try {
        entries = readdirSync(this.dir, { withFileTypes: true });
      } catch (error) {
        if (errorCode(error) === "ENOENT") return [];
        throw error;
      }
      const reservations: Reservation[] = [];
      for (const entry of entries) {
        if (!entry.isFile() || !isAddressName(entry.name)) continue;
        let content: string;
        try {
          content = readFileSync(this.path(entry.name), "utf8");
        } catch (error) {
          if (errorCode(error) === "ENOENT") continue; // released meanwhile by a reader that does not lock
          throw error;
        }
        reservations.push({ ip: entry.name, ...parseReservationContent(content) });
      }
      return reservations;
    });
  }

  private fileOf(ip: string): string {
    // A valid address cannot contain "/" or be "." or "..": the file stays inside the network directory.
    if (!isAddressName(ip)) throw new IpamError("ADDRESS_UNAVAILABLE", `${JSON.stringify(ip)} is not an IP address`);
    return this.path(ip);
  }

  /** A file of the network directory. `dir` is normalised and names hold no "/": no path.join needed. */
  private path(name: string): string {
    return `${this.dir}/${name}`;
  }

  private io<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      if (error instanceof IpamError) throw error;
      throw new IpamError("IO", `${what}: ${(error as Error).message}`, { cause: error });
    }
  }
}
