"""Host side of the link to an MCU running edgeprof's firmware shim.

For now this only finds candidate devices (:mod:`edgeprof.bridge.ports`); the wire protocol
arrives in a later issue.
"""
