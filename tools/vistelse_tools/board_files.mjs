// Copy host files into a MicroPython WebAssembly filesystem the way
// `mpremote cp` would put them on a board (used by micropython_run.mjs and
// virtual_board.mjs).
import fs from 'node:fs';
import path from 'node:path';

export function mkdirs(FS, dir) {
  let at = '';
  for (const part of dir.split('/').filter(Boolean)) {
    at += '/' + part;
    try { FS.mkdir(at); } catch (e) { /* exists */ }
  }
}

// hostDir: a folder (its .py, .mpy and .json files, recursively) or a single file
export function copyTree(FS, hostDir, boardDir) {
  if (fs.statSync(hostDir).isFile()) {      // a single file, copied whatever its name
    mkdirs(FS, boardDir.slice(0, boardDir.lastIndexOf('/')));
    FS.writeFile(boardDir, fs.readFileSync(hostDir));
    return;
  }
  mkdirs(FS, boardDir);
  for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
    const host = path.join(hostDir, entry.name);
    const board = boardDir + '/' + entry.name;
    if (entry.isDirectory()) {
      if (entry.name !== '__pycache__') copyTree(FS, host, board);
    } else if (entry.name.endsWith('.py') || entry.name.endsWith('.mpy') || entry.name.endsWith('.json')) {
      FS.writeFile(board, fs.readFileSync(host));
    }
  }
}
