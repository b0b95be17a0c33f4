// Builds the dashboard into dist/: one minified ES module and one stylesheet, both with a content
// hash in their names (served under /dashboard/ and cacheable forever), and index.html naming
// them (served at / and never cached). Fails when the JavaScript is over its budget.
import { build } from "esbuild";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const BUDGET_GZIP = 150 * 1024; // issue #15: the dashboard's JavaScript at most 150 KB gzipped
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const result = await build({
  entryPoints: { app: join(root, "src/main.js") },
  bundle: true,
  format: "esm",
  minify: true,
  target: ["chrome110", "firefox115", "safari16"],
  entryNames: "[name]-[hash]",
  outdir: dist,
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});
const outputs = Object.keys(result.metafile.outputs).map(p => basename(p));
const js = outputs.find(f => f.endsWith(".js"));
const css = outputs.find(f => f.endsWith(".css"));
const html = (await readFile(join(root, "src/index.html"), "utf8")).replace("%JS%", js).replace("%CSS%", css);
await writeFile(join(dist, "index.html"), html);

let gzipJs = 0;
for (const file of outputs.filter(f => f.endsWith(".js"))) gzipJs += gzipSync(await readFile(join(dist, file)), { level: 9 }).length;
const gzipCss = gzipSync(await readFile(join(dist, css)), { level: 9 }).length;
const kb = n => (n / 1024).toFixed(1) + " KB";
console.log(`dashboard: dist/${js} ${kb(gzipJs)} gzipped (budget ${kb(BUDGET_GZIP)}), dist/${css} ${kb(gzipCss)} gzipped`);
if (gzipJs > BUDGET_GZIP) {
  console.error(`dashboard: JavaScript is ${kb(gzipJs)} gzipped, over the ${kb(BUDGET_GZIP)} budget`);
  process.exit(1);
}
