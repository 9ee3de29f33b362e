// Bundles src/index.js into one script and one stylesheet for the Voilà template:
//   node build.mjs IPYCANVAS_JS OUTDIR
// IPYCANVAS_JS is the AMD module the installed ipycanvas ships (share/jupyter/nbextensions/
// ipycanvas/index.js, the same version as the Python side); it is wrapped as an ES module here.
import { readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const [ipycanvasPath, outdir] = process.argv.slice(2);
if (!ipycanvasPath || !outdir) {
  console.error('usage: node build.mjs IPYCANVAS_JS OUTDIR');
  process.exit(2);
}
const ipycanvasSource = readFileSync(ipycanvasPath, 'utf8');

const ipycanvasModule = {
  name: 'ipycanvas-module',
  setup(b) {
    b.onResolve({ filter: /^ipycanvas-module$/ }, () => ({ path: 'ipycanvas-module', namespace: 'amd' }));
    b.onLoad({ filter: /.*/, namespace: 'amd' }, () => ({
      resolveDir: process.cwd(),
      contents: [
        "import * as base from '@jupyter-widgets/base';",
        'let exported;',
        'function define(deps, factory) { exported = factory(base); }',
        'define.amd = true;',
        ipycanvasSource,
        'export default exported;',
      ].join('\n'),
    }));
  },
};

rmSync(outdir, { recursive: true, force: true }); // no stale fonts of an earlier build
await build({
  entryPoints: { doodle: 'src/index.js' },
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  outdir,
  plugins: [ipycanvasModule],
  alias: { 'sanitize-html': './src/inline-text.js' }, // see src/inline-text.js
  loader: { '.woff': 'file', '.woff2': 'file', '.ttf': 'file', '.eot': 'file', '.svg': 'file' },
  define: { 'process.env.NODE_ENV': '"production"' },
  // Before any bundled code runs: the benchmarks read how long the bundle takes to load and run.
  banner: { js: "performance.mark('doodle:script');" },
  logLevel: 'warning',
});
