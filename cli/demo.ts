// Owns `portcullis demo`: the built-in example, end to end, on the policies shipped in
// `policies/`. Today: check every example set and verify its formatting; later stages
// (compile, test, the kernel) join as they land.
import path from "node:path";
import { ExitCode } from "./exit-codes.js";
import { runCheck } from "./check.js";
import { runFmt } from "./fmt.js";
import { packageRoot } from "./paths.js";

const examplesRoot = path.join(packageRoot, "policies");

export function runDemo(out: (s: string) => void): ExitCode {
  let worst: ExitCode = ExitCode.Ok;
  for (const set of ["shop", "demo"]) {
    const dir = path.join(examplesRoot, set);
    out(`== policies/${set}: check`);
    const checked = runCheck([dir], { format: "human" }, out);
    out(`== policies/${set}: fmt --check`);
    const formatted = runFmt([dir], { write: false, check: true, format: "human" }, out);
    if (formatted === ExitCode.Ok) out("all files formatted");
    worst = Math.max(worst, checked, formatted) as ExitCode;
  }
  out(worst === ExitCode.Ok ? "demo: the example policies check cleanly" : "demo: problems found (see above)");
  return worst;
}
