# LoRaWAN AT modems behind one interface (base.Modem).
