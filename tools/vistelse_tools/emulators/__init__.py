"""LoRaWAN AT-modem emulators for tests and the demo.

One module per AT dialect (rak3172: RAK3172 with RUI3 firmware; wioe5:
Seeed Wio-E5), each keeping a simulated LoRaWAN session (session.py):
OTAA join, frame counters, data rate, EU868 sub-band duty cycle, maximum
payload per data rate, queued class A downlinks and occasional failures.
Every uplink is handed to a callback.

The dialect and session modules are plain Python that also runs under
MicroPython, so the end-to-end node test runs node and emulator in one
MicroPython process; `python -m vistelse_tools.emulators DIALECT` serves a
dialect on a pseudo-terminal for anything that opens a serial port (see
pty_server.py).
"""
