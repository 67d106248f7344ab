// Bundles the CLI and the parse worker into dist/ with esbuild: one file to load instead of
// hundreds of modules, which matters because package-manager hooks start depmod-tx often.
// lzma-native is a native addon and stays external (resolved from node_modules at run time).
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node18',
  external: ['lzma-native'],
  sourcemap: 'linked',
  logLevel: 'warning',
  // esbuild's ESM output needs a require() for the few CommonJS dependencies (yargs helpers).
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
};
await build({ ...common, entryPoints: { 'depmod-tx': 'src/cli/bin.ts', 'parse-worker': 'src/io/parse-worker.ts' }, outdir: 'dist', outExtension: { '.js': '.mjs' }, splitting: false });
