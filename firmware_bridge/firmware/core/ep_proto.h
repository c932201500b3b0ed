/* ep_proto.h - protocol v1 constants (docs/firmware-protocol.md). */
#ifndef EP_PROTO_H
#define EP_PROTO_H

#define EP_PROTO_VERSION 1
#define EP_FW_VERSION "edgeprof-fw 0.1.0"

#define EP_HDR_BYTES 8
#define EP_CRC_BYTES 4
#define EP_FRAME_OVERHEAD (EP_HDR_BYTES + EP_CRC_BYTES)
#define EP_FLAG_DEVICE 0x01u

#ifndef EP_MAX_PAYLOAD
#define EP_MAX_PAYLOAD 4096
#endif
#if EP_MAX_PAYLOAD < 256
#error "EP_MAX_PAYLOAD must be at least 256 (protocol v1)"
#endif
/* COBS-encoded size of a frame of n bytes, plus the delimiter. */
#define EP_COBS_MAX(n) ((n) + (n) / 254 + 2)
#define EP_WIRE_MAX EP_COBS_MAX(EP_MAX_PAYLOAD + EP_FRAME_OVERHEAD)

enum ep_msg {
    EP_T_HELLO = 0x01,
    EP_T_PING = 0x02,
    EP_T_LOAD_BEGIN = 0x03,
    EP_T_LOAD_DATA = 0x04,
    EP_T_LOAD_END = 0x05,
    EP_T_RUN = 0x06,
    EP_T_ACK = 0x07,
    EP_T_STOP = 0x08,
    EP_T_RESET = 0x09,
    EP_T_TELEMETRY = 0x0A,
    EP_T_REPLY = 0x80, /* reply type = request type | EP_T_REPLY */
    EP_T_RESULT = 0xA0,
    EP_T_BOOT = 0xA1,
    EP_T_ERROR = 0xFF,
};

enum ep_err {
    EP_E_VERSION = 1,
    EP_E_TYPE = 2,
    EP_E_MALFORMED = 3,
    EP_E_TOO_LARGE = 4,
    EP_E_RANGE = 5,
    EP_E_LOAD_CRC = 6,
    EP_E_STATE = 7,
    EP_E_WORKLOAD = 8,
    EP_E_MODEL = 9,
    EP_E_BOOT = 10,
    EP_E_UNSUPPORTED = 11,
    EP_E_BUSY = 12,
    EP_E_INPUT = 13,
    EP_E_TIMEOUT = 14,
};

#define EP_RESULT_RETX_MS 200u
#define EP_RESULT_RETX_TRIES 50u

#endif
