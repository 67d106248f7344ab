// Worker thread body of the parse pool: reads module files, decompresses and parses them.
// Reading happens here, not in the main thread, so file I/O, decompression and ELF parsing
// of different modules overlap across cores. Reads are synchronous (the files are in the page
// cache after the first run, and a worker has nothing else to do meanwhile); the batch's .xz/.zst
// files go through one xz(1)/zstd(1) run (batch-decompress.ts), the rest through the usual
// decompressors.
import { parentPort } from 'node:worker_threads';
import type { ParseJob, ParseReply } from './parse-pool.ts';
import { parseBatch } from './parse-batch.ts';

const port = parentPort;
if (!port) throw new Error('parse-worker must run in a worker thread');

port.on('message', async (job: ParseJob) => {
  const reply: ParseReply = { id: job.id, results: await parseBatch(job.files) };
  port.postMessage(reply);
});
