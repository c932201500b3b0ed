"""The link to an MCU running edgeprof's firmware, host side (protocol: docs/firmware-protocol.md).

Layers, one module each, bottom up: ``transport`` (serial, pty, socket) → ``framing`` (COBS +
CRC-32) → ``protocol`` (message and error tables, msgpack bodies) → ``device`` (a session with
one board: hello, load, run, stop). Beside them:
``model_blob`` compiles a .tflite into the firmware's blob, ``firmware_build`` and ``qemu``
build the firmware ports and run the QEMU one.
"""
