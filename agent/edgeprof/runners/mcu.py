"""The ``mcu`` runner: a model on a board running edgeprof firmware, over serial or USB.

``edgeprof run --runner mcu --board stm32f446-nucleo --port /dev/ttyACM0 model.tflite`` gives
the same report as on Linux, with the numbers from the device: latency from its cycle counter
(converted with the frequency it reported), memory from its heap and stack watermarks. The host
compiles the .tflite file into the firmware's model blob (edgeprof.bridge.model_blob), uploads
it, and for each inference uploads the input, RUNs one inference and reads back its RESULT. The
host's time around that (the session's region) is reported as the round trip, never as latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprof.device.board_registry import Board, BoardKind, LinkInfo, get_board
from edgeprof.errors import InputError, UnavailableError
from edgeprof.runners.base import DeviceMeasurements, ModelFile, Runner, RunnerOptions
from edgeprof.runners.tensors import TensorInfo

# What a device's counter counts, by its INFO cyc_src (docs/firmware-protocol.md, section 3).
COUNTS = {
    "dwt-cyccnt": "cycles",
    "ccount": "cycles",
    "systick": "cycles",
    "systick-icount": "instructions",
    "clock-monotonic": "nanoseconds",
}


@dataclass(frozen=True)
class McuOptions:
    """Where the board is and how patient to be with it (None: the board file's ``[link]``)."""

    board: str | Board | None = None  # a shipped board id, or a Board read with load_board_file
    port: str | None = None
    baudrate: int = 115_200
    timeout_s: float | None = None  # per request, before a resend
    tries: int | None = None  # sends of one request
    result_timeout_s: float | None = None  # for one inference's RESULT
    layers: bool = True  # per-layer cycles in each RESULT
    flavour: str = "xnnpack"  # which LiteRT kernels the blob reproduces bit for bit

    @classmethod
    def from_flags(cls, flags: RunnerOptions) -> McuOptions:
        """Board, port and baud rate. The blob reproduces LiteRT's kernels: XNNPACK's by
        default, as a Linux run of the same file uses, or the builtin ones with
        --no-default-delegates."""
        return cls(
            board=flags.board,
            port=flags.port,
            baudrate=flags.baudrate,
            flavour="xnnpack" if flags.default_delegates else "litert",
        )


def _tensor_infos(data: bytes) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The model's I/O tensors as LiteRT describes them (the interpreter is only read)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise UnavailableError(
            f"the mcu runner reads .tflite files with ai-edge-litert ({exc}): "
            "pip install 'edgeprof[litert]'"
        ) from None
    try:
        interp = Interpreter(model_content=data)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"LiteRT cannot read the model: {exc}") from None
    ins = [TensorInfo.from_litert_detail(d) for d in interp.get_input_details()]
    outs = [TensorInfo.from_litert_detail(d, role="output") for d in interp.get_output_details()]
    return ins, outs


def _nbytes(t: TensorInfo) -> int:
    return int(np.prod(t.shape, dtype=np.int64)) * t.np_dtype.itemsize


class McuRunner(Runner):
    """One model on one MCU; see the module docstring."""

    name = "mcu"

    def __init__(self, model: ModelFile, options: McuOptions) -> None:
        super().__init__(model)
        if not options.board:
            raise InputError("--runner mcu needs --board (an mcu board id from boards/)")
        if not options.port:
            raise InputError(
                "--runner mcu needs --port (/dev/ttyACM0, socket://HOST:PORT, rfc2217://, usb:)"
            )
        self.options = options
        self.board: Board = (
            options.board if isinstance(options.board, Board) else get_board(options.board)
        )
        if self.board.kind is not BoardKind.MCU:
            raise InputError(f"board {self.board.id} is a {self.board.kind} board, not an mcu")
        self._device: Any = None
        self._info: Any = None
        self._blob = b""
        self._inputs: list[TensorInfo] = []
        self._outputs: list[TensorInfo] = []
        self._uploaded_input: bytes | None = None
        self._last_output: bytes | None = None
        self._results: list[Any] = []
        self._ops: tuple[str, ...] = ()
        self._arena = 0
        self._upload: Any = None

    # ---- lifecycle -----------------------------------------------------------------------

    def probe(self) -> None:
        """Untimed: read the model's tensors, compile the blob, connect and HELLO."""
        from edgeprof.bridge.device import Device
        from edgeprof.bridge.model_blob import compile_tflite
        from edgeprof.bridge.protocol import DeviceTimeoutError
        from edgeprof.bridge.transport import open_transport

        self._inputs, self._outputs = _tensor_infos(self.model.data)
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise InputError(
                f"the firmware's model workload takes one input and one output; this model has "
                f"{len(self._inputs)} and {len(self._outputs)}"
            )
        for t in (*self._inputs, *self._outputs):
            if t.dtype != "int8":
                raise InputError(f"tensor {t.name!r} is {t.dtype}: the firmware runs int8 models")
        self._blob = compile_tflite(self.model.data, self.options.flavour)  # type: ignore[arg-type]
        link = self.link
        transport = open_transport(str(self.options.port), self.board, self.options.baudrate)
        self._device = Device(
            transport,
            timeout=link.request_timeout_s,
            tries=link.tries,
            result_timeout=link.result_timeout_s,
        )
        try:
            self._info = self._device.hello()
        except DeviceTimeoutError as e:
            self.close()
            raise DeviceTimeoutError(f"{e}{self._firmware_hint()}") from None
        except BaseException:
            self.close()
            raise
        if self._info.board != self.board.id:
            raise InputError(
                f"the device on {self.options.port} says it is {self._info.board!r}, "
                f"not --board {self.board.id}"
            )
        if "model" not in self._info.workloads:
            raise InputError(
                f"the firmware on {self.options.port} has no model workload "
                f"(it has {', '.join(self._info.workloads) or 'none'})"
            )
        if len(self._blob) > self._info.model_cap:
            raise InputError(
                f"the model blob is {len(self._blob)} bytes; the device's model buffer holds "
                f"{self._info.model_cap}"
            )

    @property
    def link(self) -> LinkInfo:
        """The link's patience: the board file's ``[link]``, overridden by the options."""
        board = self.board.link_timeouts
        o = self.options
        return LinkInfo(
            request_timeout_s=board.request_timeout_s if o.timeout_s is None else o.timeout_s,
            tries=board.tries if o.tries is None else o.tries,
            result_timeout_s=(
                board.result_timeout_s if o.result_timeout_s is None else o.result_timeout_s
            ),
        )

    def _firmware_hint(self) -> str:
        fw = self.board.firmware
        if fw is None:
            return ""
        return (
            f"; board {self.board.id} runs firmware port {fw.port!r} "
            f"(edgeprof firmware build --port-name {fw.port})"
        )

    def prepare(self) -> None:
        """Timed: upload the blob and let the device lay the model out (its first RUN)."""
        if self._device is None:
            self.probe()
        dev = self._device
        self._upload = dev.load("model", self._blob)
        started, _ = dev.run_all("model", 1, layers=self.options.layers)
        if started.in_bytes != _nbytes(self._inputs[0]):
            raise InputError(
                f"the device's model takes {started.in_bytes} input bytes, the .tflite file "
                f"{_nbytes(self._inputs[0])}"
            )
        if started.out_bytes != _nbytes(self._outputs[0]):
            raise InputError(
                f"the device's model gives {started.out_bytes} output bytes, the .tflite file "
                f"{_nbytes(self._outputs[0])}"
            )
        self._ops = started.ops
        self._arena = started.arena_bytes
        self._results = []

    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def set_inputs(self, values: dict[str, np.ndarray]) -> None:
        info = self._inputs[0]
        try:
            x = np.asarray(values[info.name])
        except KeyError:
            raise InputError(f"no value for input {info.name!r}") from None
        if x.dtype != info.np_dtype or int(x.size) != int(np.prod(info.shape)):
            raise InputError(
                f"input {info.name!r}: expected {info.dtype} {list(info.shape)}, got "
                f"{x.dtype} {list(x.shape)}"
            )
        raw = np.ascontiguousarray(x).tobytes()
        if raw != self._uploaded_input:
            self._device.load("input", raw)
            self._uploaded_input = raw

    def invoke(self) -> None:
        results = list(
            self._device.run(
                "model", 1, loaded_input=True, outputs=True, layers=self.options.layers
            )
        )
        r = results[0]
        if r.output is None or len(r.output) != _nbytes(self._outputs[0]):
            raise InputError("the device's RESULT lacks the output bytes it was asked for")
        self._last_output = r.output
        self._results.append(r)

    def get_outputs(self) -> list[np.ndarray]:
        if self._last_output is None:
            raise InputError("no inference has run yet")
        info = self._outputs[0]
        return [np.frombuffer(self._last_output, dtype=info.np_dtype).reshape(info.shape).copy()]

    # ---- the device's numbers ------------------------------------------------------------

    def device_measurements(self) -> DeviceMeasurements | None:
        results, self._results = self._results, []
        info = self._info
        hz = float(info.cycle_hz) if info is not None else 1.0
        cycles = np.array([r.cycles for r in results], dtype=np.uint64)
        heap_hwm = np.array([r.heap_hwm_bytes for r in results], dtype=np.int64)
        stack_hwm = np.array([r.stack_hwm_bytes for r in results], dtype=np.int64)
        summary: dict[str, Any] = {
            "cycle_source": info.cycle_source if info else None,
            "cycle_hz": info.cycle_hz if info else None,
            "counts": COUNTS.get(info.cycle_source, "unknown") if info else None,
            "heap_peak_bytes": int(heap_hwm.max()) if len(results) else None,
            "stack_peak_bytes": int(stack_hwm.max()) if len(results) else None,
            "arena_bytes": self._arena,
            "model_blob_bytes": len(self._blob),
        }
        layered = [r.layer_cycles for r in results if r.layer_cycles]
        if layered and self._ops and all(len(lc) == len(self._ops) for lc in layered):
            mean = np.mean(np.array(layered, dtype=np.float64), axis=0)
            summary["layers"] = [
                {"op": op, "mean_cycles": float(c), "mean_s": float(c) / hz}
                for op, c in zip(self._ops, mean, strict=True)
            ]
        warnings = []
        if info is not None and info.cycle_source == "systick-icount":
            warnings.append(
                "device latency is from QEMU -icount: it counts instructions, not real cycles"
            )
        if info is not None and info.cycle_source == "clock-monotonic":
            warnings.append("device is the host port of the firmware: latency is host time")
        if len(results) and not stack_hwm.any():
            warnings.append("the device cannot tell its stack high-water mark (port reports 0)")
        return DeviceMeasurements(
            latency_s=cycles.astype(np.float64) / hz,
            arrays={
                "cycles": cycles,
                "heap_bytes": np.array([r.heap_bytes for r in results], dtype=np.int64),
                "heap_hwm_bytes": heap_hwm,
                "stack_hwm_bytes": stack_hwm,
            },
            summary=summary,
            warnings=tuple(warnings),
        )

    def describe(self) -> dict[str, Any]:
        info = self._info
        d: dict[str, Any] = {
            "runner": self.name,
            "runtime": "edgeprof-fw",
            "runtime_version": info.firmware.removeprefix("edgeprof-fw ") if info else None,
            "board": self.board.id,
            "port": self.options.port,
            "kernels": self.options.flavour,
            "model_blob_bytes": len(self._blob),
        }
        if info is not None:
            d["device"] = info.describe()
        if self._upload is not None:
            d["model_upload"] = {
                "bytes": self._upload.size,
                "wire_bytes": self._upload.wire_bytes,
                "seconds": self._upload.seconds,
            }
        return d

    def close(self) -> None:
        dev, self._device = self._device, None
        if dev is not None:
            dev.close()
