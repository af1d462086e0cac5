// Copy the third-party front-end files the web UI needs from node_modules/ into
// webapp/static/vendor/ (git-ignored). Run by `npm run build` after `npm ci`.
// Nothing third-party is committed: the versions come from package-lock.json.
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const modules = join(root, "node_modules");
const vendor = join(root, "webapp", "static", "vendor");

// [source below node_modules/, target below webapp/static/vendor/]
const FILES = [
  ["htmx.org/dist/htmx.min.js", "htmx/htmx.min.js"],
  ["bpmn-js/dist/bpmn-navigated-viewer.production.min.js", "bpmn-js/bpmn-navigated-viewer.production.min.js"],
  ["bpmn-js/dist/assets/diagram-js.css", "bpmn-js/assets/diagram-js.css"],
  ["bpmn-js/dist/assets/bpmn-js.css", "bpmn-js/assets/bpmn-js.css"],
  ["bpmn-js/dist/assets/bpmn-font", "bpmn-js/assets/bpmn-font"],
];

function version(pkg) {
  return JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;
}

if (!existsSync(modules)) {
  console.error("node_modules/ is missing: run `npm ci` first.");
  process.exit(1);
}
rmSync(vendor, { recursive: true, force: true });
for (const [from, to] of FILES) {
  const src = join(modules, from);
  if (!existsSync(src)) {
    console.error(`missing ${src}: is package-lock.json installed (npm ci)?`);
    process.exit(1);
  }
  const dest = join(vendor, to);
  mkdirSync(dirname(dest), { recursive: true });
  cpSync(src, dest, { recursive: true });
  console.log(`copied ${from} -> webapp/static/vendor/${to}`);
}
// Record what was copied, so the installation qualification can show the versions.
const manifest = { "bpmn-js": version("bpmn-js"), "htmx.org": version("htmx.org") };
writeFileSync(join(vendor, "VERSIONS.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log("vendor versions:", JSON.stringify(manifest));
