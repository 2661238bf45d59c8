// A real container runtime as the CNI caller: podman 4.3 (Debian 12), run inside a test netns that plays the node.
//
//   const netns = createTestNetns("node");                       // the node; remove it in afterAll
//   const node = createPodmanNode({ netnsName: netns.name, pluginDirs: [PLUGIN_DIR, REFERENCE_PLUGIN_DIR] });
//   node.writeConflist({ cniVersion: "1.0.0", name: `${RUN_PREFIX}net`, plugins: [...] });
//   node.run("a", ["sleep", "3600"], { network: `${RUN_PREFIX}net` });
//   node.exec("a", ["ping", "-c1", node.ip("b")]);
//   node.close();                                                // before removing the netns
//
// Each node is self-contained: its own containers.conf and storage.conf (CONTAINERS_CONF and
// CONTAINERS_STORAGE_CONF replace every system file), image store, state, locks and CNI config dir, all under one
// temp dir `${TMPDIR:-/tmp}/wft-<run>-pm-…`, so the machine's podman store is never touched and several nodes can
// run at once. The busybox image is imported into each node from a tarball of Debian's static busybox (about
// 0.1 s; no registry is reachable). scripts/cleanup-test-state.sh finds crashed nodes by the `podman-node` marker.
//
// Podman quirks met on the way (podman 4.3.1, containernetworking-plugins 1.1.1, runc, cgroup v1):
// - Enter the node with `nsenter --net`, not `ip netns exec`: the latter also makes a mount namespace and remounts
//   /sys, which hides /sys/fs/cgroup and breaks runc. Podman then runs every CNI plugin in the node netns (host
//   side of the veth, bridge, portmap's rules); the containers' own netns are `/run/netns/netns-<uuid>`.
// - `cni_plugin_dirs` has no command-line flag: it is set in the per-node containers.conf. `--network-config-dir`
//   exists but the config file covers it too.
// - network_backend must be set to "cni": with netavark installed, podman picks netavark for a new store.
// - Podman loads and validates every conflist in the config dir on every command, calling VERSION on each plugin
//   (CNI_PATH=dummy, stdin `{"cniVersion":…}`). A conflist whose plugin is missing, or fails VERSION, or does not
//   list the conflist's cniVersion, is skipped with only a warning: `podman run` then says "network not found".
//   So install the plugin binary before the first podman command that needs the network.
// - libcni in podman 4.3 knows CNI versions up to 1.0.0: a 1.1.0 conflist is rejected.
// - ADD gets CNI_ARGS `IgnoreUnknown=1;K8S_POD_NAME=<container name>`; runtimeConfig (portMappings, …) only goes
//   to plugins that declare the capability in the conflist.
// - A failed ADD: podman runs DEL at once, exits 126 and leaves the container in state Created.
// - A container whose command exits is torn down at once (CNI DEL, IP released), and host-local then hands out the
//   next address round-robin: never hard-code IPs, ask `ip(name)` (NetworkSettings.IPAddress is empty for
//   non-default networks; the address is under NetworkSettings.Networks[<name>]).
// - libcni caches each attachment in /var/lib/cni/results/<network>-<containerID>-<ifname>: a fixed path in
//   podman 4.3. Podman removes the file on rm; name networks `${RUN_PREFIX}…` so that the cleanup script can remove
//   a crashed run's entries. Likewise give host-local a `dataDir` under a temp dir (its default is
//   /var/lib/cni/networks/<network>).
// - The default lock type "shm" is one segment (/dev/shm/libpod_lock) shared by every podman on the machine, and
//   a store's first command (a new tmp_dir) frees all of its locks: lock_type "file" keeps the locks per node.
// - busybox as PID 1 ignores SIGTERM: `podman rm -f` would wait the 10 s stop timeout. Containers are created
//   with --stop-timeout 0 and removed with --time 0.
// - Debian's busybox-static 1.35 `wget` segfaults (also outside podman): use `nc`. Busybox nc has no `-k`; a
//   server that answers every connection is `nc -ll -p PORT -e /bin/echo TEXT`.
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUN_PREFIX, type TestNetns } from "./netns";

export const BUSYBOX_IMAGE = "localhost/busybox:weft";
/** Debian's containernetworking-plugins: bridge, host-local, portmap, … */
export const REFERENCE_PLUGIN_DIR = "/usr/lib/cni";
/** Where runtimes look for conflists and plugins by default. */
export const SYSTEM_CNI_CONF_DIR = "/etc/cni/net.d";
export const SYSTEM_CNI_BIN_DIR = "/opt/cni/bin";

/**
 * Copies `binary` into /opt/cni/bin under a name of this run (`wft-<run>-<name>`): a plugin installed where
 * runtimes look, that can never replace a real install of that name. Returns the name, the conflist's `type`,
 * and a function removing the copy (scripts/cleanup-test-state.sh removes it after a crash).
 */
export function installSystemPlugin(binary: string, name: string): { type: string; remove: () => void } {
  const type = `${RUN_PREFIX}${name}`;
  const target = join(SYSTEM_CNI_BIN_DIR, type);
  mkdirSync(SYSTEM_CNI_BIN_DIR, { recursive: true, mode: 0o755 });
  copyFileSync(binary, `${target}.tmp`);
  chmodSync(`${target}.tmp`, 0o755);
  renameSync(`${target}.tmp`, target);
  return { type, remove: () => rmSync(target, { force: true }) };
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NSENTER = findCommand("nsenter");
const PODMAN = findCommand("podman");
const UNSHARE = findCommand("unshare");
const BUSYBOX = "/bin/busybox";
const DEFAULT_TIMEOUT_MS = 60_000;

export interface PodmanNodeOptions {
  /** The test netns that plays the node (`createTestNetns(...).name`); it must exist and outlive the node. */
  netnsName: string;
  /** Podman's network_config_dir, where the conflists are. Default: `<node dir>/net.d`. */
  cniConfDir?: string;
  /** Where podman looks for CNI plugins, first match wins. Default: [REFERENCE_PLUGIN_DIR]. */
  pluginDirs?: string[];
  /**
   * Podman's own CNI paths instead of the node's: conflists in /etc/cni/net.d, plugins in its default dirs
   * (/opt/cni/bin, /usr/lib/cni, …), as on a real node. The conflists written are removed by close(); see
   * installSystemPlugin for the binary.
   */
  systemCniPaths?: boolean;
  /** Timeout of each podman command. Default 60 s. */
  timeoutMs?: number;
}

export interface RunOptions {
  /** The CNI network (conflist `name`) to attach the container to. */
  network: string;
  /** Port mappings as for `podman run -p`, e.g. "18080:8080" or "18080:8080/udp". */
  publish?: string[];
  /** More `podman run` options, placed before the image. */
  podmanArgs?: string[];
  image?: string;
}

export interface CommandOptions {
  /** Return "" instead of throwing when the command fails. */
  allowFailure?: boolean;
  timeoutMs?: number;
  input?: string;
}

export interface PodmanNode {
  /** The node's temp dir (config, store, state). */
  readonly dir: string;
  readonly cniConfDir: string;
  readonly netnsName: string;
  /** Writes `<cniConfDir>/<name>.conflist` and returns its path. */
  writeConflist(conflist: { name: string; [key: string]: unknown }): string;
  /** Runs `podman ARGV` in the node and returns its stdout. */
  podman(argv: string[], options?: CommandOptions): string;
  /** `podman run -d` (detached: returns once CNI ADD is done and the process started); returns the container id. */
  run(name: string, argv: string[], options: RunOptions): string;
  /** `podman exec NAME ARGV` and its stdout. */
  exec(name: string, argv: string[], options?: CommandOptions): string;
  /** `podman rm -f` (runs CNI DEL); no error when the container does not exist. */
  rm(name: string): void;
  /** The container's IPv4 address on `network` (default: its first network). */
  ip(name: string, network?: string): string;
  /** Removes every container (CNI DEL in the node netns) and the node's temp dir. Safe to call twice. */
  close(): void;
}

/**
 * Gives a node netns its own address on an "eth0": a veth pair with both ends in the node (CI's kernel has no
 * dummy module), so host ports can be reached at a real node address.
 */
export function addNodeUplink(netns: TestNetns, address: string): void {
  netns.exec(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "uplink0"]);
  netns.exec(["ip", "address", "add", `${address}/24`, "dev", "eth0"]);
  netns.exec(["ip", "link", "set", "uplink0", "up"]);
  netns.exec(["ip", "link", "set", "eth0", "up"]);
}

export function createPodmanNode(options: PodmanNodeOptions): PodmanNode {
  const { netnsName } = options;
  if (!existsSync(`/run/netns/${netnsName}`)) throw new Error(`Cannot create podman node: no netns ${netnsName}`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const dir = mkdtempSync(join(tmpdir(), `${RUN_PREFIX}pm-`));
  const system = options.systemCniPaths === true;
  const cniConfDir = system ? SYSTEM_CNI_CONF_DIR : (options.cniConfDir ?? join(dir, "net.d"));
  const pluginDirs = system ? undefined : (options.pluginDirs ?? [REFERENCE_PLUGIN_DIR]);
  const conflistsWritten: string[] = [];
  mkdirSync(cniConfDir, { recursive: true });
  mkdirSync(join(dir, "tmp"));
  writeFileSync(join(dir, "podman-node"), "");
  writeFileSync(join(dir, "netns"), netnsName);
  writeFileSync(join(dir, "containers.conf"), containersConf(dir, cniConfDir, pluginDirs));
  writeFileSync(join(dir, "storage.conf"), storageConf(dir));
  const env = {
    PATH,
    HOME: process.env.HOME ?? "/root",
    TMPDIR: join(dir, "tmp"),
    CONTAINERS_CONF: join(dir, "containers.conf"),
    CONTAINERS_STORAGE_CONF: join(dir, "storage.conf"),
  };
  let closed = false;

  // Every podman command runs in the node netns; only close() falls back to a fresh empty netns when the node's is
  // already gone, so that the plugins' DEL (portmap's iptables, …) can never act on the root namespace.
  const runPodman = (argv: string[], commandOptions: CommandOptions, enter: string[]): string => {
    const command = [...enter, PODMAN, ...argv];
    try {
      return execFileSync(command[0]!, command.slice(1), {
        env,
        input: commandOptions.input,
        encoding: "utf8",
        stdio: ["pipe", "pipe", "pipe"],
        timeout: commandOptions.timeoutMs ?? timeoutMs,
        killSignal: "SIGKILL",
      });
    } catch (error) {
      if (commandOptions.allowFailure) return "";
      const e = error as { stderr?: string; message: string };
      throw new Error(`podman ${argv.join(" ")} failed (node ${netnsName}): ${e.stderr?.trim() || e.message}`);
    }
  };
  const podman = (argv: string[], commandOptions: CommandOptions = {}): string => {
    if (closed) throw new Error(`Cannot run podman ${argv[0]}: node ${netnsName} is closed`);
    return runPodman(argv, commandOptions, [NSENTER, `--net=/run/netns/${netnsName}`]);
  };

  const node: PodmanNode = {
    dir,
    cniConfDir,
    netnsName,
    writeConflist(conflist) {
      if (system && !conflist.name.startsWith(RUN_PREFIX)) throw new Error(`Cannot write ${conflist.name} to ${cniConfDir}: name it ${RUN_PREFIX}…`);
      const path = join(cniConfDir, `${conflist.name}.conflist`);
      writeFileSync(path, `${JSON.stringify(conflist, null, 2)}\n`);
      conflistsWritten.push(path);
      return path;
    },
    podman,
    run(name, argv, runOptions) {
      const publish = (runOptions.publish ?? []).flatMap((p) => ["--publish", p]);
      return podman([
        "run", "--detach", "--name", name, "--network", runOptions.network, "--stop-timeout", "0",
        "--label", `weft-test-run=${RUN_PREFIX}`, ...publish, ...(runOptions.podmanArgs ?? []),
        runOptions.image ?? BUSYBOX_IMAGE, ...argv,
      ]).trim();
    },
    exec(name, argv, commandOptions) {
      return podman(["exec", ...(commandOptions?.input === undefined ? [] : ["--interactive"]), name, ...argv], commandOptions);
    },
    rm(name) {
      podman(["rm", "--force", "--ignore", "--time", "0", name]);
    },
    ip(name, network) {
      const json = podman(["inspect", "--format", "{{json .NetworkSettings.Networks}}", name]);
      const networks = JSON.parse(json) as Record<string, { IPAddress?: string }>;
      const address = network === undefined ? Object.values(networks)[0]?.IPAddress : networks[network]?.IPAddress;
      if (!address) throw new Error(`Cannot find the address of container ${name} on ${network ?? "any network"}: ${json.trim()}`);
      return address;
    },
    close() {
      if (closed) return;
      try {
        const enter = existsSync(`/run/netns/${netnsName}`) ? [NSENTER, `--net=/run/netns/${netnsName}`] : [UNSHARE, "--net"];
        runPodman(["rm", "--all", "--force", "--time", "0"], { allowFailure: true }, enter);
      } finally {
        closed = true;
        // Nothing stays mounted under dir once the containers are gone; the cleanup script handles crashes.
        rmSync(dir, { recursive: true, force: true });
        if (system) for (const path of conflistsWritten) rmSync(path, { force: true });
      }
    },
  };

  try {
    importBusybox(node);
  } catch (error) {
    node.close();
    throw error;
  }
  return node;
}

/** Calls `fn` until it returns without throwing, every `intervalMs`, for at most `timeoutMs` (then rethrows). */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

/** `pluginDirs` undefined: podman's own CNI paths (its default plugin dirs, and /etc/cni/net.d). */
function containersConf(dir: string, cniConfDir: string, pluginDirs: string[] | undefined): string {
  const list = (values: string[]) => `[${values.map((v) => JSON.stringify(v)).join(", ")}]`;
  return [
    "[containers]",
    "default_ulimits = []",
    "",
    "[network]",
    'network_backend = "cni"',
    ...(pluginDirs === undefined ? [] : [`cni_plugin_dirs = ${list(pluginDirs)}`, `network_config_dir = ${JSON.stringify(cniConfDir)}`]),
    "",
    "[engine]",
    'cgroup_manager = "cgroupfs"',
    'runtime = "runc"',
    'events_logger = "none"',
    'lock_type = "file"',
    `tmp_dir = ${JSON.stringify(join(dir, "tmp", "libpod"))}`,
    `image_copy_tmp_dir = ${JSON.stringify(join(dir, "tmp"))}`,
    "",
  ].join("\n");
}

function storageConf(dir: string): string {
  // vfs: a container's rootfs is a plain copy (2 MB of busybox), so nothing is mounted under dir and a crashed
  // run leaves no overlay mounts behind.
  return [
    "[storage]",
    'driver = "vfs"',
    `graphroot = ${JSON.stringify(join(dir, "root"))}`,
    `runroot = ${JSON.stringify(join(dir, "runroot"))}`,
    "",
  ].join("\n");
}

/** Imports BUSYBOX_IMAGE: a rootfs of Debian's static busybox with one symlink per applet in /bin. */
function importBusybox(node: PodmanNode): void {
  const rootfs = join(node.dir, "busybox-rootfs");
  for (const sub of ["bin", "etc", "tmp", "proc", "sys", "dev"]) mkdirSync(join(rootfs, sub), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, "bin", "busybox"));
  chmodSync(join(rootfs, "bin", "busybox"), 0o755);
  const applets = execFileSync(BUSYBOX, ["--list"], { encoding: "utf8" }).split("\n").filter((a) => a && a !== "busybox");
  for (const applet of applets) symlinkSync("busybox", join(rootfs, "bin", applet));
  const tarball = join(node.dir, "busybox.tar");
  execFileSync("tar", ["-C", rootfs, "-cf", tarball, "."], { env: { PATH } });
  node.podman(["import", "--quiet", tarball, BUSYBOX_IMAGE]);
  rmSync(rootfs, { recursive: true });
  rmSync(tarball);
}

function findCommand(name: string): string {
  for (const directory of PATH.split(":")) {
    const path = join(directory, name);
    if (existsSync(path)) return path;
  }
  return name; // not installed: the first call fails with ENOENT and names it
}
