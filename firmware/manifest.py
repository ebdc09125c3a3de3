# The node firmware for freezing into a MicroPython image (micropython-lib's
# manifest convention; docs/firmware.md, "Freezing the firmware").
#
# In the board's own manifest (FROZEN_MANIFEST when building MicroPython):
#     include("$(PORT_DIR)/boards/manifest.py")
#     include("/path/to/vistelse/firmware/manifest.py")
# Frozen, the modules' bytecode runs from the firmware's flash instead of
# being loaded into the heap. boot.py, main.py, boards/ and the node file
# stay on the board's filesystem: an installer reads and edits them there.
metadata(description="Vistelse people-counting node: pipeline, queue, modem drivers", version="1.0.0")

package("vistelse_node")
# the node's codec (codecs/micropython/manifest.py freezes it alone)
module("vistelse_mcodec.py", base_path="../codecs/micropython")
