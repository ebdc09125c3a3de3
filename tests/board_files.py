"""Facts a board file states (firmware/boards/<name>.py), read as text: the
board files import `machine`, which only a board (or the virtual board) has.
The reading is vistelse deploy's own (deploy.board_facts), so tests and the
tools see the same values."""
from vistelse_tools.deploy import board_facts

__all__ = ["board_facts"]
