# Runs first after every reset. Kept small: nothing here may fail.
# The USB REPL stays as it is (mpremote and `vistelse record` use it);
# WiFi and Bluetooth are never turned on (ESP32: they are off by default).
import gc

gc.collect()
