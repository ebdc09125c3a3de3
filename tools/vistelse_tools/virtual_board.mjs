// The MicroPython side of the virtual board: one MicroPython WebAssembly
// instance whose filesystem is the board's flash, kept across resets.
//
// Requests arrive as JSON lines on stdin, one answer per line on stdout:
//   {"op": "exec", "code": "..."}   -> {"out": base64, "err": "...", "reset": bool}
//   {"op": "reset"}                  -> {"ok": true}        (hard reset: new interpreter, same files)
//   {"op": "uarts", "map": {"1": "/dev/pts/7"}}  -> {"ok": true}
// MicroPython code reaches the board's UARTs through the `vboard` module
// (see vboard_machine.py): each UART is a pseudo-terminal opened here
// non-blocking, so a read never stalls the interpreter, as on a real board.
import fs from 'node:fs';
import readline from 'node:readline';
import { loadMicroPython } from '@micropython/micropython-webassembly-pyscript';

const MACHINE_SHIM = process.argv[2];   // path of vboard_machine.py on the host
let mp = null;
let out = [];
let resetRequested = false;
const uartPaths = {};
const uartFds = {};

function uartFd(id) {
  if (!(id in uartFds)) {
    const path = uartPaths[id];
    if (!path) throw new Error('UART ' + id + ' is not connected on this virtual board');
    uartFds[id] = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  }
  return uartFds[id];
}

let resetCause = 1;   // power on
const vboard = {
  reset_cause() { return resetCause; },
  uart_write(id, hex) {
    const buf = Buffer.from(hex, 'hex');
    let done = 0;
    while (done < buf.length) {
      try { done += fs.writeSync(uartFd(id), buf, done); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
    }
    return buf.length;
  },
  uart_read(id, n) {
    const buf = Buffer.alloc(n);
    try {
      const got = fs.readSync(uartFd(id), buf, 0, n, null);
      return buf.subarray(0, got).toString('hex');
    } catch (e) {
      if (e.code === 'EAGAIN') return '';
      throw e;
    }
  },
  request_reset() { resetRequested = true; },
};

function walk(FS, dir, files) {
  for (const name of FS.readdir(dir)) {
    if (name === '.' || name === '..') continue;
    const path = (dir === '/' ? '' : dir) + '/' + name;
    const st = FS.stat(path);
    if (FS.isDir(st.mode)) { files.push([path, null]); walk(FS, path, files); }
    else files.push([path, FS.readFile(path)]);
  }
  return files;
}

async function boot(files) {
  mp = await loadMicroPython({
    heapsize: 2 * 1024 * 1024,
    linebuffer: false,
    stdout: (bytes) => out.push(Buffer.from(bytes)),
    stderr: (bytes) => out.push(Buffer.from(bytes)),
  });
  mp.registerJsModule('vboard', vboard);
  for (const [path, data] of files) {
    if (data === null) { try { mp.FS.mkdir(path); } catch (e) { /* exists */ } }
    else mp.FS.writeFile(path, data);
  }
  for (const dir of ['/flash', '/flash/lib', '/vboard']) { try { mp.FS.mkdir(dir); } catch (e) { /* exists */ } }
  // The machine shim belongs to the virtual board, not to the flash: it is
  // never copied to a real board by `vistelse deploy`.
  mp.FS.writeFile('/vboard/machine.py', fs.readFileSync(MACHINE_SHIM));
  // The flash is /flash and the working directory, as on a pyboard; an
  // ESP32's flash is its root. Paths relative to it (`:main.py`, `:lib/`)
  // mean the same on both, which is how `vistelse deploy` copies.
  mp.FS.chdir('/flash');
  mp.runPython("import sys\nsys.path[:] = ['', '.frozen', '/flash/lib', '/vboard']\n" + ERRNO_FIX);
  for (const script of ['/flash/boot.py']) {
    try { mp.FS.stat(script); mp.runPython(new TextDecoder().decode(mp.FS.readFile(script))); } catch (e) { /* none, or it failed: as a board, go on */ }
  }
}

function flashFiles() {
  return [['/flash', null]].concat(walk(mp.FS, '/flash', []));
}

// The WebAssembly port raises OSError with Emscripten's errno numbers
// (ENOENT = 44) while its errno module, and every board, use MicroPython's
// (ENOENT = 2); tools such as mpremote rely on the latter.
const ERRNO_FIX = `
import os
_EMSCRIPTEN_ERRNO = {44: 2, 20: 17, 54: 20, 31: 21, 28: 22, 55: 39, 8: 9, 51: 28, 29: 5, 63: 1}
def _board_errno(f):
    def call(*args):
        try:
            return f(*args)
        except OSError as e:
            n = e.args[0] if e.args else None
            if n in _EMSCRIPTEN_ERRNO:
                raise OSError(_EMSCRIPTEN_ERRNO[n])
            raise
    return call
for _name in ("stat", "mkdir", "remove", "rmdir", "listdir", "ilistdir", "rename", "statvfs", "chdir"):
    if hasattr(os, _name):
        setattr(os, _name, _board_errno(getattr(os, _name)))
import builtins
builtins.open = _board_errno(open)
del _name, builtins
`;

await boot([]);
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const req = JSON.parse(line);
  let answer;
  if (req.op === 'exec') {
    out = [];
    let err = '';
    resetRequested = false;
    try {
      mp.runPython(req.code);
    } catch (e) {
      err = String(e.message || e);
      if (!err.endsWith('\n')) err += '\n';
    }
    const reset = resetRequested;
    answer = { out: Buffer.concat(out).toString('base64'), err: reset ? '' : err, reset };
    if (reset) { out = []; resetCause = 2; await boot(flashFiles()); }
  } else if (req.op === 'reset') {
    resetCause = req.cause || 1;     // a power cycle unless told otherwise
    await boot(flashFiles());
    answer = { ok: true };
  } else if (req.op === 'uarts') {
    Object.assign(uartPaths, req.map);
    answer = { ok: true };
  } else {
    answer = { error: 'unknown op ' + req.op };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
