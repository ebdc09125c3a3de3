# Pin and peripheral maps, one file per board: the one file an installer edits.
# `vistelse deploy --board NAME` copies boards/NAME.py; main.py picks it by
# the "board" field of the node file (vistelse.json).
