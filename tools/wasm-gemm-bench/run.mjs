// Runs the modules named on the command line (paths to .wasm files) in headless Chromium
// (Debian's, through the project's playwright-core), each twice in turn, and prints
// GFLOP/s per matrix shape. The shapes are those of the models' linear layers and
// attention (tokens x channels).
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const files = process.argv.slice(2);
const shapes = [[1024, 256, 256], [4096, 64, 192], [1024, 1024, 1024], [256, 256, 1024]];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  await page.goto("about:blank");
  const modules = files.map((f) => Array.from(fs.readFileSync(f)));
  const rows = await page.evaluate(async ([modules, shapes]) => {
    const out = [];
    for (const round of [0, 1]) {
      for (let i = 0; i < modules.length; i++) {
        const { instance } = await WebAssembly.instantiate(new Uint8Array(modules[i]), {
          env: { now: () => performance.now() },
        });
        const run = /** @type {(m: number, k: number, n: number, iters: number) => number} */ (instance.exports.run);
        out.push({ round, i, gflops: shapes.map(([m, k, n]) => (2 * m * k * n) / run(m, k, n, 5) / 1e6) });
      }
    }
    return out;
  }, [modules, shapes]);
  console.log(`| module | round | ${shapes.map((s) => s.join("x")).join(" | ")} |`);
  console.log(`|---|---|${shapes.map(() => "---").join("|")}|`);
  for (const r of rows) {
    console.log(`| ${path.basename(files[r.i])} | ${r.round + 1} | ${r.gflops.map((g) => g.toFixed(1)).join(" | ")} |`);
  }
} finally {
  await browser.close();
}
