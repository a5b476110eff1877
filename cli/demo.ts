// Owns `portcullis demo`: the built-in example, end to end, on the policies shipped in
// `policies/`: check and fmt --check each set, compile it into a bundle, run its tests on
// the compiled tables, and decide one request from the bundle. The kernel joins later.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { runCheck } from "./check.js";
import { ExitCode } from "./exit-codes.js";
import { runFmt } from "./fmt.js";
import { packageRoot } from "./paths.js";
import { CommandFailed, runCompile, runEval, runTest } from "./policy-commands.js";

const examplesRoot = path.join(packageRoot, "policies");

/** One request per example set, shown decided from its bundle. */
const sampleRequests: Record<string, { from: string; to: string }> = {
  shop: { from: "workload:frontend", to: "169.254.169.254:80/tcp" },
  demo: { from: "workload:client", to: "127.0.0.1:18080/tcp" },
};

async function step(out: (s: string) => void, title: string, run: () => ExitCode | Promise<ExitCode>): Promise<ExitCode> {
  out(`== ${title}`);
  try {
    return await run();
  } catch (e) {
    if (e instanceof CommandFailed) return e.code;
    throw e;
  }
}

export async function runDemo(version: string, out: (s: string) => void): Promise<ExitCode> {
  let worst: ExitCode = ExitCode.Ok;
  const work = mkdtempSync(path.join(tmpdir(), "portcullis-demo-"));
  try {
    for (const set of ["shop", "demo"]) {
      const dir = path.join(examplesRoot, set);
      const bundle = path.join(work, `${set}.bundle`);
      const sample = sampleRequests[set]!;
      const codes = [
        await step(out, `policies/${set}: check`, () => runCheck([dir], { format: "human" }, out)),
        await step(out, `policies/${set}: fmt --check`, () => {
          const code = runFmt([dir], { write: false, check: true, format: "human" }, out);
          if (code === ExitCode.Ok) out("every file is formatted");
          return code;
        }),
        await step(out, `policies/${set}: compile`, () => runCompile([dir], bundle, version, out)),
        await step(out, `policies/${set}: test (on the compiled tables)`, () => runTest([dir], "tables", out)),
        await step(out, `policies/${set}: eval --bundle --from ${sample.from} --to ${sample.to}`, () => runEval([], { bundle, ...sample, engine: "tables" }, out)),
      ];
      worst = Math.max(worst, ...codes) as ExitCode;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  out(worst === ExitCode.Ok ? "demo: both example sets check, format, compile and pass their tests" : "demo: problems found (see above)");
  return worst;
}
