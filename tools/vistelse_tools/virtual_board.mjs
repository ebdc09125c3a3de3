// The MicroPython side of the virtual board: one MicroPython WebAssembly
// instance whose filesystem is the board's flash, kept across resets.
//
// Requests arrive as JSON lines on stdin, one answer per line on stdout:
//   {"op": "exec", "code": "..."}   -> {"out": base64, "err": "...", "reset": bool}
//   {"op": "reset"}                  -> {"ok": true}        (hard reset: new interpreter, same files)
//   {"op": "uarts", "map": {"1": "/dev/pts/7"}}  -> {"ok": true}
//   {"op": "poll"}                   -> {"reset": bool}   (did the watchdog reset the board?)
//   {"op": "files", "files": [[host path, board path], ...]}  -> {"ok": true}
//                                       (copied onto the flash as `mpremote cp` would)
//
// The watchdog (machine.WDT) is enforced, as on a board: it cannot be
// stopped, it survives Ctrl-C and soft resets, and only a reset stops it.
// Not fed within its timeout, the board resets (reset cause WDT_RESET):
// while idle at the REPL at once (a timer), while running code at the next
// call into the board (a UART, a pin, time via the shim, a feed) or when
// the code returns. A late feed does not save it: the deadline had passed.
// MicroPython code reaches the board's UARTs through the `vboard` module
// (see vboard_machine.py): each UART is a pseudo-terminal opened here
// non-blocking, so a read never stalls the interpreter, as on a real board.
import fs from 'node:fs';
import readline from 'node:readline';
import { loadMicroPython } from '@micropython/micropython-webassembly-pyscript';
import { copyTree } from './board_files.mjs';

const MACHINE_SHIM = process.argv[2];   // path of vboard_machine.py on the host
// the board's heap: the runtime's initial heap, and what gc.mem_free() reports (the
// npm build grows its heap on demand, MICROPY_GC_SPLIT_HEAP_AUTO, so this is not a hard cap)
const HEAP_BYTES = parseInt(process.argv[3] || '0', 10);
const FLASH_BYTES = parseInt(process.argv[4] || '0', 10);   // the board's filesystem size (0: as the host's)
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
const WDT_RESET = 3;
let wdtDeadline = null;   // ms (Date.now()) by which the next feed must come, or null: not started
let wdtTimeout = 0;
let wdtTimer = null;
let wdtBitten = false;    // the deadline passed while code ran: reset when it returns
function wdtArm() {
  if (wdtTimer) clearTimeout(wdtTimer);
  wdtTimer = wdtDeadline === null ? null : setTimeout(wdtIdleBite, Math.max(0, wdtDeadline - Date.now()) + 1);
}
function wdtExpired() {
  if (wdtDeadline !== null && Date.now() > wdtDeadline) wdtBitten = true;
  return wdtBitten;
}
let busy = false;
let idleResets = 0;
async function wdtIdleBite() {
  if (busy || wdtDeadline === null) return;      // running code: checked when it calls in or returns
  if (Date.now() <= wdtDeadline) { wdtArm(); return; }
  idleResets += 1;
  await hardReset(WDT_RESET);
}
let booting = null;       // a reset in progress (the idle timer's): requests wait for it
async function hardReset(cause) {
  wdtDeadline = null; wdtBitten = false; wdtArm();
  resetCause = cause;
  booting = boot(flashFiles());
  await booting;
  booting = null;
}
const vboard = {
  reset_cause() { return resetCause; },
  flash_bytes() { return FLASH_BYTES; },
  heap_bytes() { return HEAP_BYTES; },
  // machine.WDT: start (or re-time) and feed; true when the board must reset now
  wdt_start(timeout) { if (wdtExpired()) return true; wdtTimeout = timeout; wdtDeadline = Date.now() + timeout; wdtArm(); return false; },
  wdt_feed() { if (wdtExpired()) return true; if (wdtDeadline !== null) { wdtDeadline = Date.now() + wdtTimeout; wdtArm(); } return false; },
  wdt_check() { return wdtExpired(); },
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
    heapsize: HEAP_BYTES || 2 * 1024 * 1024,
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
  // importing the machine shim puts the watchdog's checks into `time` too
  mp.runPython("import sys\nsys.path[:] = ['', '.frozen', '/flash/lib', '/vboard']\n" + ERRNO_FIX + "\nimport machine\n");
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
  if (booting) await booting;
  let answer;
  if (req.op === 'exec') {
    out = [];
    let err = '';
    resetRequested = false;
    const before = idleResets;
    busy = true;
    try {
      mp.runPython(req.code);
    } catch (e) {
      err = String(e.message || e);
      if (!err.endsWith('\n')) err += '\n';
    }
    busy = false;
    const bitten = wdtExpired();
    const reset = resetRequested || bitten;
    answer = { out: Buffer.concat(out).toString('base64'), err: reset ? '' : err, reset,
               watchdog: bitten };
    if (reset) { out = []; await hardReset(bitten ? WDT_RESET : 2); }
  } else if (req.op === 'reset') {
    if (req.cause === 5) {           // soft reset: a new interpreter; the watchdog runs on
      resetCause = 5;
      await boot(flashFiles());
    } else {
      await hardReset(req.cause || 1);     // a power cycle unless told otherwise
    }
    answer = { ok: true };
  } else if (req.op === 'poll') {
    answer = { reset: idleResets > 0 };
    idleResets = 0;
  } else if (req.op === 'files') {
    for (const [host, board] of req.files) copyTree(mp.FS, host, board);
    answer = { ok: true };
  } else if (req.op === 'uarts') {
    Object.assign(uartPaths, req.map);
    answer = { ok: true };
  } else {
    answer = { error: 'unknown op ' + req.op };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
