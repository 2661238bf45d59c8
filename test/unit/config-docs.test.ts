// docs/configuration.md's weft-agent flag table is generated from agent/flags.ts by scripts/gen-config-docs.mjs;
// this fails when someone changes a flag without regenerating it (`node scripts/gen-config-docs.mjs`).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FLAGS } from "../../agent/flags";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const DOC = path.join(repoRoot, "docs/configuration.md");
const GENERATOR = path.join(repoRoot, "scripts/gen-config-docs.mjs");

function check(file: string): { code: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [GENERATOR, "--check", "--file", file], { cwd: repoRoot, encoding: "utf8", timeout: 30_000 });
  return { code: result.status, stderr: result.stderr };
}

describe("docs/configuration.md: weft-agent flags", () => {
  const temp = mkdtempSync(path.join(tmpdir(), "weft-config-docs-"));
  afterAll(() => rmSync(temp, { recursive: true, force: true }));

  it("is what scripts/gen-config-docs.mjs generates from agent/flags.ts", () => {
    const result = check(DOC);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
  });

  it("has one row per flag with its environment variable and default", () => {
    const doc = readFileSync(DOC, "utf8");
    const block = doc.slice(doc.indexOf("<!-- BEGIN GENERATED weft-agent flags"), doc.indexOf("<!-- END GENERATED weft-agent flags"));
    const rows = block.split("\n").filter((line) => line.startsWith("| `--"));
    expect(rows).toHaveLength(FLAGS.length);
    for (const flag of FLAGS) {
      const row = rows.find((line) => line.startsWith(`| \`--${flag.name}\``));
      expect(row, flag.name).toBeDefined();
      if (flag.env !== undefined) expect(row).toContain(`\`${flag.env}\``);
      if (flag.default !== undefined && flag.default !== "") expect(row).toContain(`\`${flag.default}\``);
    }
  });

  it("is reported stale when a flag's row no longer matches agent/flags.ts", () => {
    const stale = path.join(temp, "configuration.md");
    writeFileSync(stale, readFileSync(DOC, "utf8").replace("`WEFT_RESYNC_INTERVAL` | `10s`", "`WEFT_RESYNC_INTERVAL` | `30s`"));
    const result = check(stale);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/stale.*run node scripts\/gen-config-docs\.mjs/);
  });
});
