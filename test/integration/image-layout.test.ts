// The image's layout, from the build output (scripts/test.sh builds before the kernel tests): every file the
// Dockerfile's final stage copies from dist/ exists, and the agent runs from that layout alone — no
// node_modules, no repository around it — as it will at /opt/weft in the image.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RUN_PREFIX } from "../support/netns";

const root = fileURLToPath(new URL("../..", import.meta.url));
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };
const NODE = path.join(root, "node_modules/.bin/node");
/** The build stage's WORKDIR: /src/dist/… in a COPY is dist/… here. */
const BUILD_DIR = "/src/";

interface Copy {
  sources: string[];
  destination: string;
}

/** The final stage's `COPY --from=build` instructions (continuation lines joined). */
function finalStageCopies(): Copy[] {
  const text = fs.readFileSync(path.join(root, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const finalStage = text.slice(text.lastIndexOf("\nFROM "));
  return [...finalStage.matchAll(/^COPY\s+(.+)$/gm)].map(([, rest]) => {
    const words = rest!.split(/\s+/).filter(Boolean);
    expect(words, `COPY ${rest}: copies from the build stage`).toContain("--from=build");
    const paths = words.filter((w) => !w.startsWith("--"));
    const destination = paths.pop()!;
    return { sources: paths, destination };
  });
}

/** A build-stage path in dist/ → the file in this checkout; undefined for other build-stage paths. */
function inDist(source: string): string | undefined {
  if (!source.startsWith(`${BUILD_DIR}dist/`)) return undefined;
  return path.join(root, source.slice(BUILD_DIR.length));
}

describe("the image layout from dist/", () => {
  const copies = finalStageCopies();
  let imageRoot: string;

  beforeAll(() => {
    imageRoot = fs.mkdtempSync(path.join(tmpdir(), `${RUN_PREFIX}image-`));
  });
  afterAll(() => fs.rmSync(imageRoot, { recursive: true, force: true }));

  it("has every file the final stage copies from dist/", () => {
    const fromDist = copies.flatMap((c) => c.sources).filter((s) => inDist(s) !== undefined);
    expect(fromDist.length, "the final stage copies the build output").toBeGreaterThanOrEqual(3);
    for (const source of fromDist) expect(fs.existsSync(inDist(source)!), `${source} (npm run build)`).toBe(true);
    // The one other build-stage file is the stripped Node runtime; the launcher runs the bundle the COPY put there.
    expect(copies.flatMap((c) => c.sources).filter((s) => inDist(s) === undefined)).toEqual(["/src/node"]);
    const dockerfile = fs.readFileSync(path.join(root, "Dockerfile"), "utf8");
    // The launcher is the one the build wrote, on PATH through a link.
    expect(copies).toContainEqual({ sources: ["/src/dist/weft-agent"], destination: "/opt/weft/weft-agent" });
    expect(dockerfile).toContain("ln -s /opt/weft/weft-agent /usr/local/bin/weft-agent");
    expect(dockerfile).toMatch(/^ENTRYPOINT \["weft-agent"\]$/m);
  });

  it("gives the build stage every local module the build scripts import", () => {
    const text = fs.readFileSync(path.join(root, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
    const buildStage = text.slice(0, text.lastIndexOf("\nFROM "));
    const copied = [...buildStage.matchAll(/^COPY\s+(.+)$/gm)].flatMap(([, rest]) => rest!.split(/\s+/).slice(0, -1));
    const wanted = new Set<string>();
    const visit = (file: string) => {
      if (wanted.has(file)) return;
      wanted.add(file);
      const source = fs.readFileSync(path.join(root, file), "utf8");
      for (const [, spec] of source.matchAll(/^import .* from "(\.{1,2}\/[^"]+)";$/gm)) visit(path.join(path.dirname(file), spec!));
    };
    const build = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).scripts.build as string;
    for (const [, script] of build.matchAll(/node (scripts\/\S+\.mjs)/g)) visit(script!);
    expect(wanted.size).toBeGreaterThanOrEqual(3);
    for (const file of wanted) {
      const covered = copied.some((c) => c === file || file.startsWith(`${c.replace(/\/$/, "")}/`));
      expect(covered, `the build stage copies ${file}`).toBe(true);
    }
  });

  it("runs the agent from the image's paths alone and prints this version", () => {
    // Lay out dist/'s files as the COPY instructions do, under a temporary root.
    for (const { sources, destination } of copies) {
      for (const source of sources) {
        const from = inDist(source);
        if (from === undefined) continue;
        // Docker's rules: a directory's contents go into the destination; a file into a destination ending in "/"
        // keeps its name.
        const into = fs.statSync(from).isDirectory() || !destination.endsWith("/") ? destination : path.join(destination, path.basename(source));
        const to = path.join(imageRoot, into);
        fs.mkdirSync(path.dirname(to), { recursive: true });
        fs.cpSync(from, to, { recursive: true });
      }
    }
    const bundle = path.join(imageRoot, "opt/weft/agent/weft-agent.mjs");
    expect(fs.existsSync(path.join(imageRoot, "opt/weft/agent/koffi.node")), "koffi's addon beside the bundle").toBe(true);
    // etcd3 reads `${__dirname}/../proto/rpc.proto` when the bundle loads it.
    expect(fs.existsSync(path.join(path.dirname(bundle), "../proto/rpc.proto")), "etcd3's protos at /opt/weft/proto").toBe(true);
    expect(fs.existsSync(path.join(imageRoot, "opt/weft/bin/weft")), "the plugin at /opt/weft/bin/weft").toBe(true);

    const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
    const version = spawnSync(NODE, [bundle, "--version"], { cwd: imageRoot, env, encoding: "utf8", timeout: 30_000 });
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toBe(`weft-agent ${pkg.version}\n`);
    const help = spawnSync(NODE, [bundle, "help"], { cwd: imageRoot, env, encoding: "utf8", timeout: 30_000 });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain("install-cni");

    // The launcher, through the link on PATH, with `node` on PATH as in the image (there /usr/local/bin/node).
    const bin = path.join(imageRoot, "usr/local/bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.symlinkSync(path.join(imageRoot, "opt/weft/weft-agent"), path.join(bin, "weft-agent"));
    fs.symlinkSync(fs.realpathSync(NODE), path.join(bin, "node"));
    const cache = path.join(imageRoot, "cache");
    const launched = spawnSync("weft-agent", ["--version"], {
      cwd: imageRoot, env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, WEFT_CACHE_DIR: cache }, encoding: "utf8", timeout: 30_000,
    });
    expect(launched.status, launched.stderr).toBe(0);
    expect(launched.stdout).toBe(`weft-agent ${pkg.version}\n`);
    // Its V8 flags are accepted by this Node, and the compile cache went where WEFT_CACHE_DIR says.
    const launcher = fs.readFileSync(path.join(imageRoot, "opt/weft/weft-agent"), "utf8");
    expect(launcher).toMatch(/^exec "\$node" --max-semi-space-size=1 --no-memory-pool --expose-gc "\$here\/agent\/weft-agent\.mjs" "\$@"$/m);
    expect(fs.existsSync(path.join(cache, "agent"))).toBe(true);
  });
});
