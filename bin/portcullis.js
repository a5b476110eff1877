#!/usr/bin/env node
// Entry point of the `portcullis` command; the CLI lives in cli/main.ts (built to dist/).
import { main } from "../dist/cli/main.js";

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
