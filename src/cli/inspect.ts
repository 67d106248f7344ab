// `depmod-tx inspect FILE...`: what depmod reads from each module file.
// Exit code: 0 all files read; 65 (EX_DATAERR) when any file is malformed (kmod's depmod cannot
// load it: the line says what depmod would print and why); 66 (EX_NOINPUT) when any file cannot be
// read (66 wins over 65). Every file is attempted; each failure is one stderr line naming the file.
// --json prints one JSON array of {file, ...record} for the files that parsed.
import { DepmodTxError, FormatError } from '../errors.ts';
import { unloadable } from '../module/parse.ts';
import { describeRecord, recordJson } from '../module/describe.ts';
import { parseModuleFile } from '../module/parse.ts';
import { EXIT } from './exit-codes.ts';

export interface InspectIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readFile: (p: string) => Promise<Uint8Array>;
}

export async function runInspect(files: string[], opts: { json: boolean }, io: InspectIo): Promise<number> {
  let code: number = EXIT.ok;
  const json: unknown[] = [];
  let printed = 0;
  for (const file of files) {
    let bytes: Uint8Array;
    try {
      bytes = await io.readFile(file);
    } catch (e) {
      const why = (e as { code?: string }).code ?? (e instanceof Error ? e.message : String(e));
      io.stderr(`depmod-tx: ${file}: cannot read: ${why}\n`);
      code = EXIT.noinput;
      continue;
    }
    try {
      const record = await parseModuleFile(bytes, file);
      const why = unloadable(record);
      if (why !== undefined) throw new FormatError(file, why);
      if (opts.json) json.push(recordJson(file, record));
      // Text goes out file by file so a long list shows progress; blocks are separated by a blank line.
      else io.stdout(`${printed++ > 0 ? '\n' : ''}${describeRecord(file, record)}`);
    } catch (e) {
      if (!(e instanceof DepmodTxError)) throw e;
      io.stderr(`depmod-tx: ${e.message}\n`);
      if (code !== EXIT.noinput) code = EXIT.format;
    }
  }
  if (opts.json) io.stdout(`${JSON.stringify(json, null, 2)}\n`);
  return code;
}
