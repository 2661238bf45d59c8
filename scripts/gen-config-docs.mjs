#!/usr/bin/env node
// Writes weft-agent's flag table into docs/configuration.md from agent/flags.ts (FLAGS), so that the two never
// drift: the block between the BEGIN/END markers below is replaced, everything else in the file is kept.
//
//   node scripts/gen-config-docs.mjs                 rewrite the block (only when it changed)
//   node scripts/gen-config-docs.mjs --check         exit 1 when the block is stale (test/unit/config-docs.test.ts)
//   node scripts/gen-config-docs.mjs --file F ...    another file than docs/configuration.md
//
// agent/flags.ts is bundled with esbuild in memory (it is TypeScript), so any Node can run this.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BEGIN = "<!-- BEGIN GENERATED weft-agent flags: node scripts/gen-config-docs.mjs writes this block from agent/flags.ts -->";
export const END = "<!-- END GENERATED weft-agent flags -->";

async function loadFlags() {
  const result = await esbuild.build({
    entryPoints: [path.join(root, "agent/flags.ts")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "node",
    logLevel: "silent",
  });
  const code = result.outputFiles[0].text;
  return (await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`)).FLAGS;
}

const cell = (text) => text.replaceAll("|", "\\|");

/** The Markdown table: one row per flag, in FLAGS' order. */
export function renderFlagTable(flags) {
  const rows = flags.map((flag) => {
    const name = `\`--${flag.name}\`${flag.kind === "boolean" ? "" : ` *${flag.kind}*`}`;
    const env = flag.env === undefined ? "–" : `\`${flag.env}\``;
    const fallback = flag.default === undefined ? "–" : flag.default === "" ? '`""`' : `\`${flag.default}\``;
    return `| ${name} | ${env} | ${fallback} | ${flag.commands.join(", ")} | ${cell(flag.help)} |`;
  });
  return ["| flag | environment | default | commands | meaning |", "|---|---|---|---|---|", ...rows].join("\n");
}

/** `document` with the generated block replaced; throws when the markers are missing. */
export function replaceBlock(document, table) {
  const begin = document.indexOf(BEGIN);
  const end = document.indexOf(END);
  if (begin === -1 || end === -1 || end < begin) throw new Error(`the markers are missing: ${BEGIN} … ${END}`);
  return `${document.slice(0, begin)}${BEGIN}\n${table}\n${document.slice(end)}`;
}

async function main(argv) {
  const check = argv.includes("--check");
  const fileIndex = argv.indexOf("--file");
  const file = fileIndex === -1 ? path.join(root, "docs/configuration.md") : path.resolve(argv[fileIndex + 1]);
  const current = fs.readFileSync(file, "utf8");
  const wanted = replaceBlock(current, renderFlagTable(await loadFlags()));
  const relative = path.relative(root, file);
  if (wanted === current) {
    if (!check) console.log(`${relative}: up to date`);
    return 0;
  }
  if (check) {
    console.error(`${relative}: the weft-agent flag table is stale (agent/flags.ts changed): run node scripts/gen-config-docs.mjs`);
    return 1;
  }
  fs.writeFileSync(file, wanted);
  console.log(`${relative}: rewrote the weft-agent flag table`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error) => {
      console.error(`gen-config-docs: ${error.message}`);
      process.exitCode = 2;
    },
  );
}
