// Worker thread body of the parse pool: reads module files, decompresses and parses them.
// Reading happens here, not in the main thread, so file I/O, decompression and ELF parsing
// of different modules overlap across cores. Reads are synchronous (the files are in the page
// cache after the first run, and a worker has nothing else to do meanwhile); the batch's .xz/.zst
// files go through one xz(1)/zstd(1) stream (stream-decompress.ts), the rest through the usual
// decompressors. A records job answers with ModuleRecords (cloned); a chunk job with module-set
// columns (parse-chunk.ts), whose buffers are moved to the pool's thread.
import { parentPort } from 'node:worker_threads';
import type { ChunkJob, ChunkReply, ParseJob, ParseReply } from './parse-pool.ts';
import { parseBatch } from './parse-batch.ts';
import { parseChunk, parsedChunkTransfer } from './parse-chunk.ts';

const port = parentPort;
if (!port) throw new Error('parse-worker must run in a worker thread');

port.on('message', async (job: ParseJob | ChunkJob) => {
  if (job.kind === 'chunk') {
    const parsed = await parseChunk(job.files, job.kmodMajor);
    port.postMessage({ id: job.id, ...parsed } satisfies ChunkReply, parsedChunkTransfer(parsed));
    return;
  }
  port.postMessage({ id: job.id, results: await parseBatch(job.files) } satisfies ParseReply);
});
