// Owns `npm run bench`: runs every benchmark section in turn, prints each as markdown
// (a machine-and-date line, then the section's table) and, with `--write`, records it in
// docs/benchmarks.md between the section's markers. A new bench (compiler, wasm, kernel)
// is one more `BenchSection` in `sections`.
//
//   node dist/bench/run.js [--write] [--only ID[,ID…]]
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { compilerSection } from "./compiler.js";
import { frontendSection } from "./frontend.js";
import { kernelSection } from "./kernel.js";
import { kernelSimSection } from "./kernel-sim.js";
import { wasmSection } from "./wasm.js";

export interface BenchSection {
  /** Names the markers `<!-- bench:ID:start -->` / `<!-- bench:ID:end -->` in docs/benchmarks.md. */
  readonly id: string;
  readonly title: string;
  /** What is measured and how, one paragraph. */
  readonly describe: string;
  /** The markdown table (and any verdict lines) of one run. */
  run(): string | Promise<string>;
}

const sections: readonly BenchSection[] = [frontendSection, compilerSection, wasmSection, kernelSimSection, kernelSection];

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const benchmarksFile = path.join(repoRoot, "docs/benchmarks.md");

const INTRO = `# Benchmarks

Measured by \`npm run bench\` (\`bench/run.ts\`) and recorded here with \`npm run bench -- --write\`,
which replaces each section between its \`bench:ID\` markers. Every section states the machine
and the date it was measured on; numbers from different machines are not comparable.
`;

function machineLine(): string {
  const cpus = os.cpus();
  const memoryGb = (os.totalmem() / 1024 ** 3).toFixed(1);
  const date = new Date().toISOString().slice(0, 10);
  // The load average says whether other work shared the machine: wall times are only comparable when it is low.
  const load = os.loadavg()[0]!.toFixed(1);
  return `Machine: ${cpus[0]?.model.trim() ?? "unknown cpu"}, ${cpus.length} cores, ${memoryGb} GB RAM; Node ${process.version}; ${os.platform()} ${os.release()}; load average ${load} at start. Date: ${date}.`;
}

/** Replaces the text between the section's markers, or appends the section when it has none. */
export function recordSection(document: string, section: BenchSection, body: string): string {
  const start = `<!-- bench:${section.id}:start -->`;
  const end = `<!-- bench:${section.id}:end -->`;
  const block = `${start}\n${body}\n${end}`;
  const from = document.indexOf(start);
  const to = document.indexOf(end);
  if (from >= 0 && to > from) return document.slice(0, from) + block + document.slice(to + end.length);
  return `${document.trimEnd()}\n\n## ${section.title}\n\n${block}\n`;
}

async function main(argv: readonly string[]): Promise<void> {
  const write = argv.includes("--write");
  const onlyIndex = argv.indexOf("--only");
  const only = onlyIndex >= 0 ? new Set((argv[onlyIndex + 1] ?? "").split(",")) : undefined;
  const chosen = sections.filter((s) => only === undefined || only.has(s.id));
  if (chosen.length === 0) throw new Error(`no bench section named ${[...(only ?? [])].join(", ")}; known: ${sections.map((s) => s.id).join(", ")}`);

  let document = existsSync(benchmarksFile) ? readFileSync(benchmarksFile, "utf8") : INTRO;
  for (const section of chosen) {
    const body = `${machineLine()}\n\n${section.describe}\n\n${await section.run()}`;
    process.stdout.write(`## ${section.title}\n\n${body}\n\n`);
    document = recordSection(document, section, body);
  }
  if (write) {
    writeFileSync(benchmarksFile, document);
    process.stderr.write(`recorded in ${path.relative(process.cwd(), benchmarksFile) || benchmarksFile}\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
