// Builds the console into ../internal/console/dist (embedded in the Go binary): one entry with
// its CSS, CodeMirror split into a chunk loaded only by the SQL editor, content-hashed names so
// the server can cache assets for a year, and an index.html without inline script or style (the
// page's CSP allows neither). The output is deterministic: a rebuild of unchanged sources leaves
// the committed files byte for byte as they are.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "internal", "console", "dist");
const assets = join(dist, "assets");

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ["src/main.tsx"],
  bundle: true,
  splitting: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  jsx: "automatic",
  jsxImportSource: "preact",
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  outdir: assets,
  metafile: true,
  write: false,
  logLevel: "warning",
});

rmSync(dist, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });
for (const f of result.outputFiles) writeFileSync(f.path, f.contents);

let script = "";
let style = "";
for (const [out, meta] of Object.entries(result.metafile.outputs)) {
  if (meta.entryPoint !== "src/main.tsx") continue;
  script = "/" + relative(dist, join(here, out));
  if (meta.cssBundle) style = "/" + relative(dist, join(here, meta.cssBundle));
}
if (!script || !style) throw new Error("build: the entry's script or stylesheet is missing from the metafile");

copyFileSync(join(here, "public", "favicon.svg"), join(dist, "favicon.svg"));
writeFileSync(
  join(dist, "index.html"),
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>CloudDB Manager</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${style}">
<script type="module" src="${script}"></script>
</head>
<body>
<noscript>The CloudDB Manager console needs JavaScript. The HTTP API at /api/v1 works without it.</noscript>
<div id="app"></div>
</body>
</html>
`,
);
