"""A session with one device running edgeprof firmware: HELLO/INFO, PING, LOAD, RUN streaming
RESULTs, TELEMETRY, STOP, RESET.

Numbers come from the device: cycles counted by its own counter (converted with the frequency
it reported), heap and stack watermarks it tracked. The host's round trip is measured too but
kept apart. A device that restarts mid-session (boot id changed) raises DeviceResetError: a run is
never stitched together across a reset.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgeprof.bridge.framing import MIN_MAX_PAYLOAD
from edgeprof.bridge.protocol import (
    PROTOCOL_VERSIONS,
    DeviceBusyError,
    DeviceResetError,
    DeviceTimeoutError,
    Link,
    Msg,
    ProtocolViolationError,
    device_error,
    pack,
    unpack,
    want_int,
    want_str,
)
from edgeprof.bridge.transport import Transport
from edgeprof.errors import EdgeprofError, InputError

U32 = 2**32 - 1
LOAD_CHUNK_OVERHEAD = 16  # msgpack map, keys, offset and bin header of one LOAD_DATA


@dataclass(frozen=True)
class DeviceInfo:
    """INFO: what the device is and what it offers."""

    version: int
    firmware: str
    board: str
    cpu_hz: int
    cycle_source: str
    cycle_hz: int
    ram_bytes: int
    flash_bytes: int
    max_payload: int
    model_cap: int
    input_cap: int
    flash_slot: int
    workloads: tuple[str, ...]
    stack_bytes: int
    boot_id: int

    @classmethod
    def parse(cls, d: dict[str, Any], boot: int) -> DeviceInfo:
        w = "INFO"
        workloads = d.get("workloads")
        if not isinstance(workloads, list) or not all(isinstance(x, str) for x in workloads):
            raise ProtocolViolationError("INFO: 'workloads' must be an array of strings")
        info = cls(
            version=want_int(d, "v", w, 1, 255),
            firmware=want_str(d, "fw", w),
            board=want_str(d, "board", w),
            cpu_hz=want_int(d, "cpu_hz", w, 0, U32),
            cycle_source=want_str(d, "cyc_src", w),
            cycle_hz=want_int(d, "cyc_hz", w, 1, U32),
            ram_bytes=want_int(d, "ram", w, 0, U32),
            flash_bytes=want_int(d, "flash", w, 0, U32),
            max_payload=want_int(d, "max_payload", w, MIN_MAX_PAYLOAD, 1 << 20),
            model_cap=want_int(d, "model_cap", w, 0, U32),
            input_cap=want_int(d, "input_cap", w, 0, U32),
            flash_slot=want_int(d, "flash_slot", w, 0, U32),
            workloads=tuple(workloads),
            stack_bytes=want_int(d, "stack", w, 0, U32),
            boot_id=boot,
        )
        if info.version not in PROTOCOL_VERSIONS:
            raise ProtocolViolationError(
                f"INFO: device chose protocol v{info.version}, not offered"
            )
        return info

    def describe(self) -> dict[str, Any]:
        """For the report."""
        return {
            "protocol": self.version,
            "firmware": self.firmware,
            "board": self.board,
            "cpu_hz": self.cpu_hz,
            "cycle_source": self.cycle_source,
            "cycle_hz": self.cycle_hz,
            "ram_bytes": self.ram_bytes,
            "flash_bytes": self.flash_bytes,
            "max_payload": self.max_payload,
            "workloads": list(self.workloads),
            "stack_bytes": self.stack_bytes,
            "boot_id": self.boot_id,
        }


@dataclass(frozen=True)
class RunStarted:
    """RUN_STARTED: what the device is about to measure."""

    n: int
    warmup: int
    in_bytes: int
    out_bytes: int
    arena_bytes: int
    ops: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    """One RESULT: one inference as the device measured it."""

    index: int
    cycles: int
    heap_bytes: int
    heap_hwm_bytes: int
    stack_hwm_bytes: int
    digest: int
    layer_cycles: tuple[int, ...] | None
    output: bytes | None
    round_trip_s: float  # host time from the request (or previous ACK) to this RESULT

    @classmethod
    def parse(cls, d: dict[str, Any], rtt: float) -> Result:
        w = "RESULT"
        lc = d.get("lc")
        if lc is not None and (
            not isinstance(lc, list)
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in lc)
        ):
            raise ProtocolViolationError("RESULT: 'lc' must be an array of non-negative integers")
        out = d.get("o")
        if out is not None and not isinstance(out, bytes):
            raise ProtocolViolationError("RESULT: 'o' must be bin")
        r = cls(
            index=want_int(d, "i", w, 0, U32),
            cycles=want_int(d, "cyc", w),
            heap_bytes=want_int(d, "heap", w, 0, U32),
            heap_hwm_bytes=want_int(d, "heap_hwm", w, 0, U32),
            stack_hwm_bytes=want_int(d, "stack_hwm", w, 0, U32),
            digest=want_int(d, "digest", w, 0, U32),
            layer_cycles=tuple(lc) if lc is not None else None,
            output=out,
            round_trip_s=rtt,
        )
        if out is not None and zlib.crc32(out) != r.digest:
            raise ProtocolViolationError(
                f"RESULT {r.index}: output bytes do not match their digest"
            )
        return r


@dataclass(frozen=True)
class LoadStats:
    """One upload, for the benchmarks: payload and wire bytes, frames, time."""

    size: int
    chunks: int
    payload_bytes: int
    wire_bytes: int
    seconds: float


class Device:
    """One device over one transport. Call :meth:`hello` first (the constructor does not, so a
    caller can measure it)."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = 0.5,
        tries: int = 6,
        result_timeout: float = 10.0,
    ) -> None:
        self.link = Link(transport, timeout=timeout, tries=tries)
        self.result_timeout = result_timeout
        self.info: DeviceInfo | None = None

    def close(self) -> None:
        self.link.transport.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- commands ------------------------------------------------------------------------

    def hello(self, *, _after_stop: bool = False) -> DeviceInfo:
        """Negotiate the protocol version and learn what the device is. Forgets any earlier
        boot id: after HELLO the session belongs to the device's current boot. A run left over
        from an earlier session (the device answers BUSY) is stopped first."""
        self.link.transport.drain_input()
        self.link.transport.write(b"\x00")  # end whatever garbage the device's decoder holds
        self.link.boot = None
        self.link.max_payload = MIN_MAX_PAYLOAD
        seq = self.link.next_seq()
        wire = self.link.send(Msg.HELLO, seq, pack({"v": list(PROTOCOL_VERSIONS)}))
        for attempt in range(self.link.tries):
            if attempt:
                self.link.stats.retransmits += 1
                self.link.write(wire, len(wire) - 12)
            deadline = time.monotonic() + self.link.timeout
            while (left := deadline - time.monotonic()) > 0:
                frame = self.link.receive(left)
                if frame is None:
                    break
                try:
                    fields = self.link.match(frame, Msg.HELLO, seq)
                except DeviceBusyError:
                    if _after_stop:
                        raise
                    self.link.command(Msg.STOP)  # a run an earlier session left behind
                    return self.hello(_after_stop=True)
                if fields is not None:
                    self.info = DeviceInfo.parse(fields, frame.boot)
                    self.link.boot = frame.boot
                    self.link.max_payload = self.info.max_payload
                    return self.info
        raise DeviceTimeoutError(
            f"no INFO from {self.link.transport.description} after {self.link.tries} HELLOs "
            "(is edgeprof firmware running there, at this baud rate?)"
        )

    def _info(self) -> DeviceInfo:
        if self.info is None:
            raise InputError("HELLO first: the session has no device info")
        return self.info

    def ping(self, data: bytes = b"") -> float:
        """One PING; the round trip in seconds. The echo must match."""
        reply = self.link.command(Msg.PING, {"d": data} if data else None)
        if data and reply.get("d") != data:
            raise ProtocolViolationError("PONG did not echo the PING's bytes")
        return self.link.stats.last_rtt_s

    def telemetry(self) -> dict[str, Any]:
        return self.link.command(Msg.TELEMETRY)

    def load(
        self, kind: str, data: bytes, *, slot: str = "ram", chunk: int | None = None
    ) -> LoadStats:
        """Upload ``data`` as ``kind`` ("model" or "input"); the device checks its CRC."""
        info = self._info()
        if kind not in ("model", "input"):
            raise InputError(f"upload kind {kind!r}: model or input")
        cap = info.model_cap if kind == "model" else info.input_cap
        if slot == "ram" and len(data) > cap:
            raise InputError(
                f"{kind} of {len(data)} bytes does not fit the device's {cap}-byte {kind} buffer"
            )
        st = self.link.stats
        tx0, t0 = st.tx_wire_bytes, time.perf_counter()
        crc = zlib.crc32(data)
        begin = self.link.command(
            Msg.LOAD_BEGIN, {"kind": kind, "size": len(data), "crc": crc, "slot": slot}
        )
        dev_chunk = want_int(begin, "chunk", "LOAD_BEGIN reply", 1, U32)
        size = min(chunk or dev_chunk, dev_chunk, info.max_payload - LOAD_CHUNK_OVERHEAD)
        chunks = 0
        for off in range(0, len(data), size):
            piece = data[off : off + size]
            reply = self.link.command(Msg.LOAD_DATA, {"o": off, "d": piece})
            if want_int(reply, "o", "LOAD_DATA reply") != off + len(piece):
                raise ProtocolViolationError("LOAD_DATA reply: wrong offset")
            chunks += 1
        end = self.link.command(Msg.LOAD_END, timeout=max(self.link.timeout, 5.0))
        if want_int(end, "crc", "LOAD_END reply", 0, U32) != crc:
            raise ProtocolViolationError("LOAD_END reply: CRC differs from the one sent")
        return LoadStats(
            size=len(data),
            chunks=chunks,
            payload_bytes=len(data),
            wire_bytes=st.tx_wire_bytes - tx0,
            seconds=time.perf_counter() - t0,
        )

    def stop(self) -> int | None:
        """STOP a run; the number of results it had sent, or None when none was running."""
        reply = self.link.command(Msg.STOP)
        v = reply.get("stopped")
        return v if isinstance(v, int) else None

    def reset(self, boot_timeout: float = 10.0) -> DeviceInfo:
        """RESET the device, wait for it to boot, and HELLO again."""
        self.link.command(Msg.RESET)
        self.link.boot = None
        deadline = time.monotonic() + boot_timeout
        while (left := deadline - time.monotonic()) > 0:
            frame = self.link.receive(left)
            if frame is not None and frame.type == Msg.BOOT:
                break
        return self.hello()

    # ---- RUN -----------------------------------------------------------------------------

    def run(
        self,
        workload: str,
        n: int = 1,
        *,
        warmup: int = 0,
        seed: int = 1,
        loaded_input: bool = False,
        layers: bool = False,
        outputs: bool = False,
        started: list[RunStarted] | None = None,
    ) -> Iterator[Result]:
        """Stream the RESULTs of one RUN, acknowledging each (stop-and-wait, section 7).
        Closing the iterator early sends STOP. ``started`` (if given) receives RUN_STARTED."""
        info = self._info()
        if workload not in info.workloads:
            raise InputError(
                f"the firmware has no workload {workload!r} (it has {', '.join(info.workloads)})"
            )
        if not 1 <= n <= 2**31 or not 0 <= warmup <= 2**31 or not 0 <= seed <= U32:
            raise InputError("RUN: n in 1..2^31, warmup in 0..2^31, seed a u32")
        fields: dict[str, Any] = {"w": workload, "n": n, "warmup": warmup, "seed": seed}
        fields["input"] = "loaded" if loaded_input else "seed"
        if layers:
            fields["layers"] = True
        if outputs:
            fields["out"] = True
        link = self.link
        seq = link.next_seq()
        payload = pack(fields)
        link.stats.requests += 1
        t_req = time.perf_counter()
        wire = link.send(Msg.RUN, seq, payload)
        run_started = self._await_started(seq, wire, len(payload))
        if started is not None:
            started.append(run_started)
        expected = 0
        t_last = t_req
        finished = False
        try:
            while expected < n:
                frame = self._next_run_frame(seq, expected)
                if frame.type == Msg.ERROR:
                    raise device_error("RUN", unpack(frame.payload, "RUN error"))
                if frame.type != Msg.RESULT:
                    link.stats.stale_frames += 1
                    continue
                now = time.perf_counter()
                result = Result.parse(unpack(frame.payload, "RESULT"), now - t_last)
                if result.index < expected:  # a duplicate: its ACK was lost
                    self._ack(seq, result.index)
                    continue
                if result.index > expected:
                    raise ProtocolViolationError(
                        f"RESULT {result.index} arrived while {expected} was expected"
                    )
                lc = result.layer_cycles
                if (
                    layers
                    and lc is not None
                    and run_started.ops
                    and len(lc) != len(run_started.ops)
                ):
                    raise ProtocolViolationError("RESULT: per-layer cycles do not match the ops")
                self._ack(seq, result.index)
                t_last = time.perf_counter()
                expected += 1
                yield result
            finished = True
        finally:
            if not finished and link.boot is not None:
                with contextlib.suppress(EdgeprofError):  # best effort: another error is
                    self.stop()  # already on its way

    def _ack(self, seq: int, index: int) -> None:
        self.link.send(Msg.ACK, seq, pack({"i": index}))

    def _await_started(self, seq: int, wire: bytes, payload_len: int) -> RunStarted:
        link = self.link
        for attempt in range(link.tries):
            if attempt:
                link.stats.retransmits += 1
                link.write(wire, payload_len)
            deadline = time.monotonic() + max(link.timeout, 2.0)
            while (left := deadline - time.monotonic()) > 0:
                frame = link.receive(left)
                if frame is None:
                    break
                if frame.seq != seq or frame.type not in (Msg.RUN | 0x80, Msg.ERROR):
                    # a RESULT before RUN_STARTED (the reply was lost): it is retransmitted
                    # by the device until ACKed, so wait for the cached reply first
                    link.stats.stale_frames += 1
                    continue
                d = unpack(frame.payload, "RUN reply")
                if frame.type == Msg.ERROR:
                    raise device_error("RUN", d)
                ops = d.get("ops", [])
                if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
                    raise ProtocolViolationError("RUN_STARTED: 'ops' must be an array of strings")
                w = "RUN_STARTED"
                return RunStarted(
                    n=want_int(d, "n", w, 1, 2**31),
                    warmup=want_int(d, "warmup", w, 0, 2**31),
                    in_bytes=want_int(d, "in_bytes", w, 0, U32),
                    out_bytes=want_int(d, "out_bytes", w, 0, U32),
                    arena_bytes=want_int(d, "arena", w, 0, U32),
                    ops=tuple(ops),
                )
        raise DeviceTimeoutError(f"no RUN_STARTED from {link.transport.description}")

    def _next_run_frame(self, seq: int, expected: int) -> Any:
        """The next device frame of this run; when none comes for result_timeout, a PING tells
        a reset (DeviceResetError from the boot id) from a device that stopped answering."""
        link = self.link
        deadline = time.monotonic() + self.result_timeout
        while (left := deadline - time.monotonic()) > 0:
            frame = link.receive(left)
            if frame is None:
                break
            if frame.type == Msg.BOOT:
                if link.boot is not None and frame.boot == link.boot:
                    continue
                link.boot = None
                raise DeviceResetError("the device restarted during the run (BOOT received)")
            if frame.seq == seq and frame.type in (Msg.RESULT, Msg.ERROR):
                return frame
            link.stats.stale_frames += 1
        link.command(
            Msg.PING
        )  # raises DeviceResetError if the boot id changed, or DeviceTimeoutError
        raise DeviceTimeoutError(
            f"no RESULT {expected} within {self.result_timeout:g} s, though the device answers "
            "PING (an inference longer than the result timeout?)"
        )

    def run_all(self, workload: str, n: int = 1, **kw: Any) -> tuple[RunStarted, list[Result]]:
        """A whole RUN: RUN_STARTED and every RESULT."""
        started: list[RunStarted] = []
        results = list(self.run(workload, n, started=started, **kw))
        return started[0], results
