// Owns the `portcullis` command line: commander wiring, exit codes, and the guarantee that
// nothing a user types ends in a stack trace (PORTCULLIS_DEBUG=1 shows internal ones).
// The policy commands' module is loaded at start; `check`, `fmt`, `export`, `kernel`, `exec`
// and `demo` load theirs when they run (about 25 ms less start-up for the others).
import { readFileSync } from "node:fs";
import path from "node:path";
import { Command, CommanderError, Option } from "commander";
import { RequestError } from "../compiler/request.js";
import { ENGINES, parseEngine } from "./engines.js";
import { CommandFailed, runCompile, runEval, runExplain, runInspect, runTest } from "./policy-commands.js";
import { ExitCode } from "./exit-codes.js";
import { DEFAULT_INSTANCE } from "./kernel-instance.js";
import { COMPILE_TARGETS, parseCompileTarget } from "./opa.js";
import { packageRoot } from "./paths.js";
import { parseFormat, UsageError } from "./report.js";

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

export interface Io {
  readonly out: (s: string) => void;
  readonly err: (s: string) => void;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

function engineOption(fallback: string): Option {
  return new Option("--engine <engine>", `evaluator: ${ENGINES.join(", ")}`).default(fallback);
}

function formatOption(): Option {
  return new Option("--format <format>", "output format: human or json").default("human");
}

export function buildProgram(io: Io, setExit: (code: number) => void): Command {
  const program = new Command("portcullis")
    .description("Policy-as-code for workload connections: check, format, test and compile .policy files")
    .version(packageVersion(), "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, "")), writeErr: (s) => io.err(s.replace(/\n$/, "")) })
    .exitOverride();

  program
    .command("check")
    .description("parse and check a policy set (files, or directories searched for *.policy)")
    .argument("<paths...>", "policy files or directories")
    .addOption(formatOption())
    .action(async (paths: string[], opts: { format: string }) => {
      const { runCheck } = await import("./check.js");
      setExit(runCheck(paths, { format: parseFormat(opts.format) }, io.out));
    });

  program
    .command("fmt")
    .description("format .policy files in the canonical layout (prints to stdout by default)")
    .argument("<paths...>", "policy files or directories")
    .option("-w, --write", "rewrite files in place")
    .option("-c, --check", "exit 1 when a file is not formatted, change nothing")
    .addOption(formatOption())
    .action(async (paths: string[], opts: { write?: boolean; check?: boolean; format: string }) => {
      if (opts.write && opts.check) throw new UsageError("`--write` and `--check` cannot be used together");
      const { runFmt } = await import("./fmt.js");
      setExit(runFmt(paths, { write: opts.write === true, check: opts.check === true, format: parseFormat(opts.format) }, io.out));
    });

  program
    .command("compile")
    .description("compile a policy set into a bundle of decision tables")
    .argument("<paths...>", "policy files or directories")
    .requiredOption("-o, --output <file>", "the bundle file to write (opa-wasm: policy.wasm, or an OPA bundle .tar.gz)")
    .addOption(new Option("--target <target>", `what to write: ${COMPILE_TARGETS.join(", ")}`).default("bundle"))
    .action(async (paths: string[], opts: { output: string; target: string }) => {
      const target = parseCompileTarget(opts.target);
      setExit(await runCompile(paths, opts.output, packageVersion(), io.out, target));
    });

  program
    .command("inspect")
    .description("show a bundle's manifest and table statistics")
    .argument("<bundle>", "a compiled bundle")
    .option("--json", "print the whole manifest as JSON")
    .action((bundle: string, opts: { json?: boolean }) => {
      setExit(runInspect(bundle, opts.json === true, io.out));
    });

  program
    .command("test")
    .description("run the `test` blocks of a policy set; the last line is `N passed, M failed`")
    .argument("[paths...]", "policy files or directories (or use --bundle)")
    .option("--bundle <file>", "run the tests compiled into a bundle instead")
    .addOption(engineOption("tables"))
    .action(async (paths: string[], opts: { bundle?: string; engine: string }) => {
      setExit(await runTest(paths, parseEngine(opts.engine), io.out, opts.bundle));
    });

  program
    .command("eval")
    .description("decide requests: one from --from/--to, or one per line of --requests (JSONL)")
    .argument("[paths...]", "policy files or directories (or use --bundle)")
    .option("--bundle <file>", "a compiled bundle instead of policy sources")
    .option("--from <principal>", "spiffe://…, workload:NAME or unidentified")
    .option("--uid <n>", "the caller's uid (default: the workload's uid selector, else 1000)")
    .option("--gid <n>", "the caller's gid (default: the workload's gid selector, else 1000)")
    .option("--to <endpoint>", "ip:port/proto or [ipv6]:port/proto")
    .option("--requests <file>", "JSONL requests, one result line each")
    .addOption(engineOption("tables"))
    .action(async (paths: string[], opts: { bundle?: string; from?: string; uid?: string; gid?: string; to?: string; requests?: string; engine: string }) => {
      setExit(await runEval(paths, { ...opts, engine: parseEngine(opts.engine) }, io.out));
    });

  program
    .command("explain")
    .description("why a request is allowed or denied: which rules matched, which scope or condition excluded the others")
    .argument("<paths...>", "policy files or directories")
    .requiredOption("--from <principal>", "spiffe://…, workload:NAME or unidentified")
    .option("--uid <n>", "the caller's uid")
    .option("--gid <n>", "the caller's gid")
    .requiredOption("--to <endpoint>", "ip:port/proto or [ipv6]:port/proto")
    .option("--all", "also list every rule whose scope does not match")
    .action((paths: string[], opts: { from: string; uid?: string; gid?: string; to: string; all?: boolean }) => {
      setExit(runExplain(paths, { ...opts, all: opts.all === true }, io.out));
    });

  program
    .command("export")
    .description("export a policy set as Cedar policies and schema that decide exactly as Portcullis does")
    .argument("<paths...>", "policy files or directories")
    .requiredOption("--cedar", "write Cedar (the only export format)")
    .requiredOption("-o, --output <dir>", "the directory to write")
    .action(async (paths: string[], opts: { output: string }) => {
      const { runExportCedar } = await import("./export.js");
      setExit(runExportCedar(paths, opts.output, io.out));
    });

  const kernel = program.command("kernel").description("enforce a bundle at connect()/sendmsg() with eBPF (Linux, root; docs/kernel.md)");
  const nameOption = () => new Option("--name <name>", "the loaded policy's name (pins under /sys/fs/bpf/portcullis/<name>)").default(DEFAULT_INSTANCE);
  kernel
    .command("load")
    .description("load a bundle and attach it to a cgroup v2 directory; when already loaded, swap generations atomically")
    .argument("<bundle>", "a compiled bundle")
    .requiredOption("--cgroup <path>", "attach point: a cgroup v2 directory (absolute, or relative to the cgroup2 mount); created when missing")
    .option("--audit", "log every decision but allow all (roll-out mode)")
    .option("--capacity <MAP=N,…>", "map capacities for a first load (see `kernel status`)")
    .addOption(nameOption())
    .action(async (bundle: string, opts: { cgroup: string; audit?: boolean; capacity?: string; name: string }) => {
      const { runKernelLoad } = await import("./kernel.js");
      setExit(runKernelLoad(bundle, { ...opts, audit: opts.audit === true }, io.out, io.err));
    });
  kernel
    .command("status")
    .description("attach point, programs, map entries, generation and per-rule counters")
    .option("--json", "one JSON object")
    .addOption(nameOption())
    .action(async (opts: { json?: boolean; name: string }) => {
      const { runKernelStatus } = await import("./kernel.js");
      setExit(runKernelStatus(opts.name, opts.json === true, io.out, io.err));
    });
  kernel
    .command("events")
    .description("decisions logged by the programs (denies; everything in audit mode) as JSON lines")
    .option("--follow", "keep printing until interrupted")
    .option("--wait <ms>", "how long to wait for events", "200")
    .addOption(nameOption())
    .action(async (opts: { follow?: boolean; wait: string; name: string }) => {
      const { runKernelEvents } = await import("./kernel.js");
      setExit(await runKernelEvents({ name: opts.name, follow: opts.follow === true, wait: Number(opts.wait) || 0 }, io.out, io.err));
    });
  kernel
    .command("unload")
    .description("detach the programs and remove every pin, state file and cgroup the policy created")
    .addOption(nameOption())
    .action(async (opts: { name: string }) => {
      const { runKernelUnload } = await import("./kernel.js");
      setExit(runKernelUnload(opts.name, io.out, io.err));
    });

  program
    .command("exec")
    .description("run a command as a workload: check its exe/sha256 selectors, set its uid/gid, place it in its cgroup")
    .requiredOption("--as <workload>", "the workload to run as")
    .option("--bundle <file>", "the bundle declaring the workload (default: the loaded policy's)")
    .addOption(nameOption())
    .argument("<command...>", "the command and its arguments, after `--`")
    .action(async (command: string[], opts: { as: string; bundle?: string; name: string }) => {
      const { runExec } = await import("./kernel.js");
      setExit(runExec(command, opts, io.err));
    });

  program
    .command("demo")
    .description("run the built-in example end to end: check, format, compile, test and decide")
    .action(async () => {
      const { runDemo } = await import("./demo.js");
      setExit(await runDemo(packageVersion(), io.out));
    });

  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  let code: number = ExitCode.Ok;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv as string[], { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return ExitCode.Ok;
      return ExitCode.Usage;
    }
    if (e instanceof CommandFailed) return e.code;
    // A request an engine cannot decide (e.g. `--engine kernel` and a non-loopback address) is a usage error.
    if (e instanceof UsageError || e instanceof RequestError) {
      io.err(`error: ${e.message}`);
      return ExitCode.Usage;
    }
    const err = e as Error;
    io.err(`internal error: ${err.message} (this is a bug in portcullis; rerun with PORTCULLIS_DEBUG=1 for details)`);
    if (process.env["PORTCULLIS_DEBUG"] === "1") io.err(err.stack ?? "");
    return ExitCode.Internal;
  }
}
