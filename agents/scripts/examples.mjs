// Bundles the example apps (examples/<name>/main.*) with esbuild, for the browser tests and for
// trying them by hand:
//
//   node scripts/examples.mjs [react|vue|angular ...]    -> examples/<name>/dist/{index.html,app.js}
//
// Each page reads window.ANALYTICS_CONFIG ({ siteKey, endpoint, ...options }); without it the
// apps use the demo site on http://127.0.0.1:5080 (./run.sh). Serve dist/ with any static server
// that answers every path with index.html (the apps use HTML5 history routing).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

const entries = {
  react: { entry: "main.tsx", mount: `<div id="root"></div>` },
  vue: { entry: "main.ts", mount: `<div id="root"></div>` },
  angular: { entry: "main.ts", mount: `<app-root></app-root>` },
};

export const exampleNames = Object.keys(entries);

/** The bundled app as a string (ES2020, minified, production builds of the frameworks). */
export async function bundleExample(name) {
  const { entry } = entries[name];
  const result = await esbuild.build({
    entryPoints: [join(root, "examples", name, entry)],
    bundle: true,
    write: false,
    format: "esm",
    target: "es2022",
    minify: true,
    jsx: "automatic",
    logLevel: "error",
    define: {
      "process.env.NODE_ENV": '"production"',
      __VUE_OPTIONS_API__: "true",
      __VUE_PROD_DEVTOOLS__: "false",
      __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: "false",
      ngDevMode: "false",
    },
    // Angular's JIT reads TypeScript's (legacy) decorators.
    tsconfigRaw: { compilerOptions: { experimentalDecorators: true, useDefineForClassFields: false } },
  });
  return result.outputFiles[0].text;
}

/** The app's index.html; `config` becomes window.ANALYTICS_CONFIG. */
export function exampleHtml(name, config) {
  const cfg = config ? `<script>window.ANALYTICS_CONFIG = ${JSON.stringify(config)};</script>` : "";
  return `<!doctype html><html><head><meta charset="utf-8"><title>${name} example</title><base href="/">${cfg}</head>
<body>${entries[name].mount}<script type="module" src="/app.js"></script></body></html>`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const names = process.argv.length > 2 ? process.argv.slice(2) : exampleNames;
  for (const name of names) {
    const dist = join(root, "examples", name, "dist");
    mkdirSync(dist, { recursive: true });
    const js = await bundleExample(name);
    writeFileSync(join(dist, "app.js"), js);
    writeFileSync(join(dist, "index.html"), exampleHtml(name));
    console.log(`examples/${name}/dist: app.js ${js.length} bytes`);
  }
}
