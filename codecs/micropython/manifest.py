# The node's payload codec, for freezing into a MicroPython image
# (micropython-lib's manifest convention); firmware/manifest.py includes it.
metadata(description="Vistelse payload codec (node side)", version="1.0.0")

module("vistelse_mcodec.py")
