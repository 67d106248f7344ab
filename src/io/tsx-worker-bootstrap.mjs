// Development only: worker threads do not inherit tsx's loader, so register it before importing
// the TypeScript worker. The bundled build starts parse-worker.mjs directly and never loads this.
import { workerData } from 'node:worker_threads';

const { register } = await import('tsx/esm/api');
register();
await import(workerData.entry);
