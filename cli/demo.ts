// Owns `portcullis demo`: the built-in example, end to end, on the policies shipped in
// `policies/`: check and fmt --check each set, compile it into a bundle, run its tests on
// the compiled tables, and decide one request from the bundle with the tables and the WASM
// evaluator. Then, where the kernel path can run (root, BPF, the built object), the demo
// set is loaded into the kernel and one process per workload makes a real loopback
// connect(): the client's succeeds, the intruder's fails with EPERM; elsewhere the demo
// says in one line why that step is skipped.
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
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
        await step(out, `policies/${set}: the same with --engine wasm`, () => runEval([], { bundle, ...sample, engine: "wasm" }, out)),
      ];
      if (set === "demo") codes.push(await step(out, "policies/demo: in the kernel (connect() from each workload's cgroup)", () => kernelDemo(bundle, out)));
      worst = Math.max(worst, ...codes) as ExitCode;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  out(worst === ExitCode.Ok ? "demo: both example sets check, format, compile and pass their tests" : "demo: problems found (see above)");
  return worst;
}

/** The demo set enforced by the kernel: load, one real connect per workload, unload. */
async function kernelDemo(bundle: string, out: (s: string) => void): Promise<ExitCode> {
  const { kernelUnavailable } = await import("../kernel-bridge/loader.js");
  const why = kernelUnavailable();
  if (why !== undefined) {
    out(`skipped: the kernel path is off here (${why})`);
    return ExitCode.Ok;
  }
  const { runExec, runKernelLoad, runKernelUnload } = await import("./kernel.js");
  const name = `demo-${process.pid}`;
  // The service the client may reach; connect() completes into the listen backlog.
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(18080, "127.0.0.1", resolve));
  let loaded = false;
  try {
    runKernelLoad(bundle, { cgroup: "/portcullis-demo", audit: false, name }, out, out);
    loaded = true;
    // The probe exits 0 when connect() succeeds and 1 when it fails (here only EPERM can fail it).
    const probe = "(exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null";
    const outcomes = ["client", "intruder"].map((workload) => {
      const status = runExec(["/bin/bash", "-c", probe], { as: workload, name }, out);
      out(`exec --as ${workload}: connect 127.0.0.1:18080/tcp ${status === 0 ? "succeeded" : status === 1 ? "failed with EPERM" : `did not run (exit ${status})`}`);
      return status;
    });
    return outcomes[0] === 0 && outcomes[1] === 1 ? ExitCode.Ok : ExitCode.Failure;
  } finally {
    if (loaded) runKernelUnload(name, out, out);
    server.close();
  }
}
