// Worker thread body of the parse pool: reads module files, decompresses and parses them.
// Reading happens here, not in the main thread, so file I/O, decompression and ELF parsing
// of different modules overlap across cores. Reads are synchronous (the files are in the page
// cache after the first run, and a worker has nothing else to do meanwhile); decompression of a
// batch still overlaps through the addon's and zlib's thread pool.
import { parentPort } from 'node:worker_threads';
import { parseModuleFile } from '../module/parse.ts';
import { readModuleForParse } from './module-read.ts';
import type { ParseJob, ParseReply } from './parse-pool.ts';
import { toParseOutcome } from './parse-outcome.ts';

const port = parentPort;
if (!port) throw new Error('parse-worker must run in a worker thread');

port.on('message', async (job: ParseJob) => {
  const results = await Promise.all(
    job.files.map(async (f) => toParseOutcome(f, async () => parseModuleFile(readModuleForParse(f.abs), f.display))),
  );
  const reply: ParseReply = { id: job.id, results };
  port.postMessage(reply);
});
