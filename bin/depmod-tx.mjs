#!/usr/bin/env node
// Installed entry point: the esbuild bundle (npm run build) keeps start-up to one file read.
import '../dist/depmod-tx.mjs';
