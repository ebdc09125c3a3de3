// Run a Python script under the official MicroPython WebAssembly build.
//
//   node micropython_run.mjs < request.json
//
// request: {"script": "..." or ["...", ...], "files": [[host_dir, board_dir], ...],
//           "heapsize": bytes, "step": "...", "repeat": n}
// A list of scripts runs as that many top-level calls, so garbage pending
// after one (gc.collect() only asks for it in this port) is collected before
// the next.
// With "step", the script sets things up and then the step runs up to n
// times, each a top-level call (the WebAssembly port collects garbage only
// between top-level calls, as a board's GC would when its heap fills),
// until it sets the global `_done`.
// Every .py file below each host_dir is copied into MicroPython's own
// filesystem at board_dir (as `mpremote cp` would put it on a board), the
// script's working directory is /flash, and /flash and /flash/lib are on
// sys.path. What the script prints goes to stdout; an exception's traceback
// goes to stderr and the exit code is 1.
import fs from 'node:fs';
import { loadMicroPython } from '@micropython/micropython-webassembly-pyscript';
import { copyTree, mkdirs } from './board_files.mjs';

const request = JSON.parse(fs.readFileSync(0, 'utf8'));

const out = (bytes) => process.stdout.write(bytes);
const mp = await loadMicroPython({
  heapsize: request.heapsize || 1024 * 1024,
  linebuffer: false,
  stdout: out,
  stderr: (bytes) => process.stderr.write(bytes),
});
for (const [hostDir, boardDir] of request.files || []) copyTree(mp.FS, hostDir, boardDir);
mkdirs(mp.FS, '/flash/lib');
mp.FS.chdir('/flash');
mp.runPython("import sys\nsys.path[:0] = ['/flash', '/flash/lib']\n");
try {
  for (const script of [].concat(request.script)) mp.runPython(script);
  for (let i = 0; request.step && i < (request.repeat || 1); i++) {
    mp.runPython(request.step);
    if (mp.globals.get('_done')) break;
  }
} catch (err) {
  process.stderr.write(String(err.message || err) + '\n');
  process.exitCode = 1;
}
