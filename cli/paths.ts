// Owns where the installed package lives, whether running from the TypeScript sources
// (tests) or from dist/ (the built command): the nearest folder upward with package.json.
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const packageRoot: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("portcullis: cannot find its package.json");
    dir = parent;
  }
  return dir;
})();
