"""How long the node's flash lasts: erase and program operations per day.

    python -m vistelse_tools.flash_endurance --board esp32_devkitc --days 1
    python -m vistelse_tools.flash_endurance --board weact_h743 --days 2 --outage-hours 12

The node (firmware Node, modem driver and emulator, persistent queue,
configuration store) runs on simulated time with its files on the real
littlefs (littlefs-python: the littlefs C library MicroPython's VfsLfs2
uses) configured as MicroPython mounts it (extmod/vfs_lfsx.c: read and
program size 32, lookahead 32, block_cycles 100, cache 128 bytes) on a
block device of the board's size and erase block, which counts every erase
and program. Reports go out every interval (5 minutes); an outage puts a
backlog in the queue and the merges and compactions that go with it.

Endurance: littlefs levels wear dynamically over every block of the
filesystem (copy-on-write; metadata pairs move after block_cycles erases),
so the years until the average block reaches the flash's rated cycles are

    years = blocks x rated_cycles / erases_per_day / 365

The gateway's receipt policy (gateway/vistelse_gateway/receipts.py, its
defaults: a receipt every 4 hours) answers the uplinks, so the queue holds
what a deployed node holds: its sent records until their receipt.

and the most-erased block of the measured days is reported beside the
average, to show the levelling. A FAT filesystem on an STM32's internal
flash (the NUCLEO-F446RE) has no levelling: ports/stm32/flashbdev.c writes
its cached 16 KB sector back (one erase) whenever the filesystem syncs,
which every file close does, and the FAT and directory live in the same
first sector; so every file operation the node makes erases that sector
once: years = rated_cycles / file_operations_per_day / 365.
"""
import argparse
import json
import sys

from littlefs import LittleFS, UserContext

from . import simulate
from .virtual_node import VirtualNode

DEV = "70b3d57ed0000077"
# erase block, blocks, rated erase cycles, what the filesystem is
BOARDS = {
    # ports/esp32/partitions-4MiB.csv: vfs 0x200000; SPI NOR flash, 100k cycles (Espressif module datasheets)
    "esp32_devkitc": {"fs": "littlefs", "block": 4096, "blocks": 512, "cycles": 100000},
    "esp32_wrover": {"fs": "littlefs", "block": 4096, "blocks": 512, "cycles": 100000},
    # WEACTSTUDIO_MINI_STM32H743: 8 MB SPI NOR (W25Q64: 100k cycles, 4 KB sectors)
    "weact_h743": {"fs": "littlefs", "block": 4096, "blocks": 2048, "cycles": 100000},
    # ports/stm32/flashbdev.c: internal flash sectors 1-3 (16 KB each), FAT; STM32F446 datasheet: 10k cycles
    "nucleo_f446re": {"fs": "fat-internal", "block": 16384, "blocks": 4, "cycles": 10000},
}


class CountingFlash(UserContext):
    """A NOR flash of `blocks` erase blocks that counts what littlefs does to it."""

    def __init__(self, block, blocks):
        UserContext.__init__(self, buffsize=block * blocks)
        self.erases = [0] * blocks
        self.prog_bytes = 0
        self.progs = 0

    def prog(self, cfg, block, off, data):
        self.progs += 1
        self.prog_bytes += len(data)
        return UserContext.prog(self, cfg, block, off, data)

    def erase(self, cfg, block):
        self.erases[block] += 1
        return UserContext.erase(self, cfg, block)


class LittleFlashFS:
    """The firmware's FlashFS interface (read/append/replace/remove/size) on
    littlefs, each call one open-write-close as MicroPython's VfsLfs2 does."""

    def __init__(self, block, blocks):
        self.flash = CountingFlash(block, blocks)
        self.fs = LittleFS(context=self.flash, block_size=block, block_count=blocks, read_size=32, prog_size=32,
                           lookahead_size=32, block_cycles=100, cache_size=min(block, 128))
        self.file_ops = 0

    def read(self, name):
        try:
            with self.fs.open(name, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def append(self, name, data):
        self.file_ops += 1
        with self.fs.open(name, "ab") as f:
            f.write(data)

    def replace(self, name, data):
        self.file_ops += 1
        with self.fs.open(name, "wb") as f:
            f.write(data)

    def remove(self, name):
        try:
            self.fs.remove(name)
            self.file_ops += 1
        except FileNotFoundError:
            pass

    def size(self, name):
        try:
            return self.fs.stat(name).size
        except FileNotFoundError:
            return 0


def measure(board, days=1.0, outage_h=0.0, interval_s=300, sensor="ld2450"):
    spec = BOARDS[board]
    # littlefs needs at least a few blocks; the F446's FAT is modelled from the file operations
    fs = LittleFlashFS(spec["block"], max(spec["blocks"], 16) if spec["fs"] == "littlefs" else 64)
    site = simulate.square_site if sensor == "ld2450" else simulate.passage_site
    scene, header = site(10, seed=9, interval_s=interval_s)
    frames, _ = simulate.simulate(scene, header, seed=9)
    lines = [json.dumps(header)] + [json.dumps(f) for f in frames]
    nf = {"dev_eui": DEV, "join_eui": "0000000000000000", "app_key": "00112233445566778899aabbccddeeff",
          "tag_key": "00" * 32, "sensor": sensor, "mount": header["mount"],
          "config": {"interval_s": interval_s, "min_count": 3,
                     "zones": [z["polygon_mm"] for z in header["zones"]],
                     "lines": [[ln["a_mm"], ln["b_mm"]] for ln in header["lines"]]}}
    kw = {"join_failures": 10 ** 9} if outage_h else {}
    import vistelse_codec
    from vistelse_gateway import receipts
    book, box = {}, []

    def on_uplink(up):
        rep = vistelse_codec.decode_uplink(up["data"], up["fport"])
        seq = rep["seq"]
        for iv in rep["intervals"]:
            receipts.note_stored(book, seq, iv["span"])
            seq += iv["span"]
        wanted = receipts.decide(book, vn.clock.elapsed_ms / 1000.0)
        if wanted is not None:
            box.append((vistelse_codec.FPORT_RECEIPT,
                        vistelse_codec.encode_downlink(wanted, dev_eui=bytes.fromhex(DEV), key=bytes(32))))

    vn = VirtualNode(nf, lines, fs=fs, loop=True, session_kw=kw, on_uplink=on_uplink,
                     downlinks=lambda dev: box.pop(0) if box else None)
    start_erases, start_ops = sum(fs.flash.erases), fs.file_ops
    if outage_h:
        vn.run_for(int(outage_h * 3600000), step_ms=1000)
        vn.session.join_failures = 0
    vn.run_for(int(days * 86400000 - outage_h * 3600000), step_ms=1000)
    erases = sum(fs.flash.erases) - start_erases
    ops = fs.file_ops - start_ops
    per_day_erases = erases / days
    per_day_ops = ops / days
    if spec["fs"] == "littlefs":
        years = spec["blocks"] * spec["cycles"] / max(per_day_erases, 1e-9) / 365
        note = "littlefs, wear levelled over %d blocks of %d bytes" % (spec["blocks"], spec["block"])
    else:
        years = spec["cycles"] / max(per_day_ops, 1e-9) / 365
        note = "FAT on internal flash: every file operation erases the first 16 KB sector"
    return {"board": board, "days": days, "outage_h": outage_h, "interval_s": interval_s,
            "intervals": vn.node.queue.next_seq, "uplinks": len(vn.uplinks),
            "receipts": vn.node.queue.receipt_no, "dropped_unreceipted": vn.node.queue.dropped,
            "file_ops_per_day": round(per_day_ops, 1), "erases_per_day": round(per_day_erases, 1),
            "prog_bytes_per_day": round(fs.flash.prog_bytes / days), "max_block_erases": max(fs.flash.erases),
            "rated_cycles": spec["cycles"], "years": round(years, 1), "filesystem": note}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vistelse_tools.flash_endurance", description=__doc__.splitlines()[0])
    p.add_argument("--board", choices=sorted(BOARDS), default="esp32_devkitc")
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--outage-hours", type=float, default=0.0)
    p.add_argument("--interval-s", type=int, default=300)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.board, args.days, args.outage_hours, args.interval_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
