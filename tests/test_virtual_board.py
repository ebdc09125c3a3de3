"""The virtual board speaks the USB REPL well enough for mpremote, unchanged."""
import hashlib
import os
import subprocess
import sys
import time
import tty

import pytest

from vistelse_tools.virtual_board import VirtualBoard

MPREMOTE = [os.path.join(os.path.dirname(sys.executable), "mpremote")]


def mpremote(board, *args):
    proc = subprocess.run(MPREMOTE + ["connect", board.port] + list(args), capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def board():
    with VirtualBoard() as b:
        yield b


def test_exec_runs_real_micropython(board):
    rc, out, err = mpremote(board, "exec", "import sys; print(sys.implementation.name, 6 * 7)")
    assert rc == 0 and out.strip() == "micropython 42", err


def test_raw_paste_mode_is_used_for_long_code(board):
    code = "x = 0\n" + "x += 1\n" * 400 + "print(x)"
    rc, out, _ = mpremote(board, "exec", code)
    assert rc == 0 and out.strip() == "400"
    assert board.log[-1][0].count("x += 1") == 400     # arrived whole through the flow-controlled windows


def test_errors_come_back_as_tracebacks(board):
    rc, out, err = mpremote(board, "exec", "raise ValueError('on the board')")
    assert rc == 1 and "ValueError: on the board" in out + err


def test_files_copy_list_hash_and_import(board, tmp_path):
    src = tmp_path / "greeting.py"
    src.write_text("TEXT = 'hej'\n" * 50)
    rc, out, err = mpremote(board, "fs", "cp", str(src), ":greeting.py")
    assert rc == 0, err
    rc, out, _ = mpremote(board, "fs", "ls")
    assert "greeting.py" in out
    rc, out, _ = mpremote(board, "fs", "sha256sum", ":greeting.py")
    assert hashlib.sha256(src.read_bytes()).hexdigest() in out
    rc, out, _ = mpremote(board, "exec", "import greeting; print(greeting.TEXT)")
    assert out.strip() == "hej"
    # missing files are errors mpremote understands (ENOENT), as on a board
    rc, out, err = mpremote(board, "fs", "cat", ":missing.py")
    assert rc != 0 and "No such file" in out + err


def test_flash_survives_soft_reset_hard_reset_and_power_cycle(board):
    rc, _, _ = mpremote(board, "exec", "open('state.txt', 'w').write('kept')")
    assert rc == 0
    assert mpremote(board, "soft-reset")[0] == 0
    rc, out, _ = mpremote(board, "resume", "exec", "import machine; print(open('state.txt').read(), machine.reset_cause())")
    assert out.split() == ["kept", "5"]                      # SOFT_RESET
    mpremote(board, "exec", "import machine; machine.reset()")
    rc, out, _ = mpremote(board, "resume", "exec", "import machine; print(open('state.txt').read(), machine.reset_cause())")
    assert out.split() == ["kept", "2"]                      # HARD_RESET
    board.power_cycle()
    rc, out, _ = mpremote(board, "resume", "exec", "import machine; print(open('state.txt').read(), machine.reset_cause())")
    assert out.split() == ["kept", "1"]                      # PWRON_RESET
    rc, out, _ = mpremote(board, "resume", "exec", "x = 1")
    rc, out, _ = mpremote(board, "resume", "exec", "print('x' in globals())")
    assert out.strip() == "True"                             # resume keeps the interpreter
    rc, out, _ = mpremote(board, "exec", "print('x' in globals())")
    assert out.strip() == "False"                            # a new session soft-resets it


def test_uart_is_a_real_serial_line():
    master, slave = os.openpty()
    tty.setraw(slave)
    with VirtualBoard(uarts={1: os.ttyname(slave)}) as b:
        os.write(master, b"+EVT:JOINED\r\n")
        rc, out, err = mpremote(b, "exec",
                                "import machine, time\nu = machine.UART(1, 115200)\n"
                                "u.write(b'AT+SEND=1:0102\\r\\n')\n"
                                "time.sleep_ms(50)\nprint(u.readline())")
        assert rc == 0 and "+EVT:JOINED" in out, err
        deadline = time.time() + 5
        got = b""
        while b"\n" not in got and time.time() < deadline:
            got += os.read(master, 100)
        assert got == b"AT+SEND=1:0102\r\n"
    os.close(master)
    os.close(slave)


# --- the watchdog is enforced ------------------------------------------------------------

def test_an_unfed_watchdog_resets_the_board_while_code_runs(board):
    before = board.watchdog_resets
    rc, out, err = mpremote(board, "exec", "import machine, time\nw = machine.WDT(timeout=300)\n"
                                           "for i in range(20):\n    print(i)\n    time.sleep_ms(100)\n")
    assert board.watchdog_resets == before + 1
    assert "19" not in out.split()                       # cut short by the reset
    rc, out, err = mpremote(board, "resume", "exec", "import machine\nprint(machine.reset_cause() == machine.WDT_RESET)")
    assert out.strip() == "True", err


def test_a_fed_watchdog_lets_the_code_run(board):
    before = board.watchdog_resets
    rc, out, err = mpremote(board, "exec", "import machine, time\nw = machine.WDT(timeout=300)\n"
                                           "for i in range(10):\n    w.feed()\n    time.sleep_ms(100)\n"
                                           "print('done')\nimport machine\nmachine.reset()")
    assert "done" in out and board.watchdog_resets == before


def test_the_watchdog_survives_ctrl_c_and_soft_reset_and_bites_at_the_idle_repl(board):
    """Nothing stops machine.WDT on the ESP32 and STM32 ports: after the
    node is interrupted the board resets within the timeout."""
    before = board.watchdog_resets
    rc, out, err = mpremote(board, "exec", "import machine\nmachine.WDT(timeout=500)", "+", "soft-reset")
    assert rc == 0, err
    time.sleep(1.0)
    rc, out, err = mpremote(board, "resume", "exec", "import machine\nprint(machine.reset_cause())")
    assert board.watchdog_resets == before + 1 and out.strip() == "3", (out, err)
