// Checks that the service worker's offline shell (SHELL in sw.js) lists every script
// and style sheet of the page: one left out is not cached at install, so the page would
// not load offline. Run by scripts/test.sh's lint phase.
import fs from "node:fs";
import path from "node:path";

const sw = fs.readFileSync("sw.js", "utf8");
const start = sw.indexOf("const SHELL = [");
const shell = sw.slice(start, sw.indexOf("].map(", start));
const listed = new Set([...shell.matchAll(/'([^']+)'/g)].map((m) => m[1]));
/** @param {string} dir @returns {string[]} */
const walk = (dir) =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
const missing = walk("web").filter((f) => /\.(js|css)$/.test(f) && !listed.has(f));
const stale = [...listed].filter((f) => f.startsWith("web/") && !fs.existsSync(f));
if (missing.length || stale.length) {
  if (missing.length) console.error(`sw.js: SHELL misses ${missing.join(", ")} (the page would not load offline)`);
  if (stale.length) console.error(`sw.js: SHELL lists ${stale.join(", ")}, which do not exist`);
  process.exit(1);
}
console.log(`sw.js: SHELL lists all ${listed.size} files of the app shell`);
