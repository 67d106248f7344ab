// Bundles the CLI and the parse worker into dist/ with esbuild: one file to load instead of
// hundreds of modules, which matters because package-manager hooks start depmod-tx often.
// lzma-native is a native addon and stays external (resolved from node_modules at run time, where an
// npm install has it; the packages do without it). Then renders the man page and the bash
// completion from the same command table as --help (scripts/docs.ts) into the output directory,
// where scripts/package.mjs takes them from. --outdir DIR builds elsewhere than dist/
// (scripts/package.mjs builds into its own directory).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node18',
  external: ['lzma-native'],
  sourcemap: 'linked',
  logLevel: 'warning',
  // esbuild's ESM output needs require(), __filename and __dirname for the CommonJS parts of yargs 17
  // (yargs 18 is ESM-only but needs Node 20; Debian 12 ships nodejs 18).
  // Every chunk gets this banner, and most never call require: it is made on first use (creating
  // it initialises Node's CommonJS loader, measured at several ms of every start), with the
  // properties yargs reads (cache, main, resolve) passed through.
  banner: {
    js: [
      "import { createRequire as __cr } from 'node:module';",
      "import { fileURLToPath as __fu } from 'node:url';",
      "import { dirname as __dn } from 'node:path';",
      'let __dtx_r;',
      'const __dtx_req = () => (__dtx_r ??= __cr(import.meta.url));',
      'function require(id) { return __dtx_req()(id); }',
      "Object.defineProperties(require, { cache: { get: () => __dtx_req().cache }, main: { get: () => __dtx_req().main }, resolve: { get: () => __dtx_req().resolve } });",
      'const __dtx_f = { get filename() { return __fu(import.meta.url); }, get dirname() { return __dn(__fu(import.meta.url)); } };',
    ].join(' '),
  },
  // Free uses of __filename/__dirname in CommonJS code point at the bundle itself; modules that
  // declare their own keep them (esbuild's define only replaces unbound identifiers).
  define: { __filename: '__dtx_f.filename', __dirname: '__dtx_f.dirname' },
};
// Chunk names carry content hashes: without a clean dist/, every build would leave the previous
// build's chunks behind, and `npm run package` (which ships all of dist/) would ship them too.
const at = process.argv.indexOf('--outdir');
const outdir = at >= 0 ? process.argv[at + 1] : 'dist';
rmSync(outdir, { recursive: true, force: true });
await build({ ...common, entryPoints: { 'depmod-tx': 'src/cli/bin.ts', 'parse-worker': 'src/io/parse-worker.ts' }, outdir, outExtension: { '.js': '.mjs' }, splitting: true, chunkNames: "[name]-[hash]" });
execFileSync(process.execPath, ['--import', 'tsx', 'scripts/docs.ts', '--out', outdir], { stdio: 'inherit' });
