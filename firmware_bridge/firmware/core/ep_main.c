/* The protocol v1 engine (docs/firmware-protocol.md): frame dispatch, the duplicate cache, LOAD,
 * RUN with stop-and-wait RESULT streaming, TELEMETRY. Single-threaded: between the two cycle
 * counter reads around a workload's run() nothing else happens. */
#include <string.h>

#include "ep_core.h"
#include "ep_crc32.h"
#include "ep_frame.h"
#include "ep_msgpack.h"
#include "ep_port.h"
#include "ep_proto.h"

#ifndef EP_MODEL_CAP
#define EP_MODEL_CAP (1024u * 1024u)
#endif
#ifndef EP_INPUT_CAP
#define EP_INPUT_CAP (64u * 1024u)
#endif
#define EP_MAX_WORKLOADS 8
#define EP_CHUNK_MAX (EP_MAX_PAYLOAD - 16)

/* ---- state --------------------------------------------------------------------------------- */

static uint8_t s_rx[EP_WIRE_MAX];
static uint8_t s_raw[EP_MAX_PAYLOAD + EP_FRAME_OVERHEAD];
static uint8_t s_reply[EP_WIRE_MAX]; /* the last reply on the wire: the duplicate cache */
/* Replies sent during a run (PING, TELEMETRY, E_BUSY) go through this buffer and leave the
 * cache alone: a stale duplicate of an older request arriving mid-run must not evict the
 * cached RUN reply, or the host's retransmitted RUN (its reply lost) would be refused as busy
 * instead of answered. Seen under the fault proxy. */
static uint8_t s_uncached[EP_WIRE_MAX];
static int s_keep_cache;
static size_t s_reply_len;
static uint8_t s_reply_type; /* request type and seq the cached reply answers */
static uint16_t s_reply_seq;
static int s_reply_valid;
static uint8_t s_stream[EP_WIRE_MAX]; /* the RESULT awaiting its ACK */
static size_t s_stream_len;

static ep_decoder s_dec;
static uint32_t s_boot;
static uint32_t s_tx_frames, s_retx, s_dups;

static uint8_t s_model[EP_MODEL_CAP];
static uint8_t s_input[EP_INPUT_CAP];

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t size;   /* of the upload in progress or finished */
    uint32_t crc;  /* expected */
    int state;     /* 0 empty, 1 receiving, 2 complete and checked */
} ep_slot;

static ep_slot s_slot_model = {s_model, EP_MODEL_CAP, 0, 0, 0};
static ep_slot s_slot_input = {s_input, EP_INPUT_CAP, 0, 0, 0};
static ep_slot *s_loading; /* the slot between LOAD_BEGIN and LOAD_END */
static uint32_t s_model_gen = 1;

static const ep_workload *s_wl[EP_MAX_WORKLOADS];
static size_t s_nwl;
static const ep_workload *s_prepared; /* the workload prepared for s_prepared_gen */
static uint32_t s_prepared_gen;
static ep_wl_shape s_shape;
static size_t s_arena;
static uint32_t s_layer_cycles[EP_MAX_LAYERS];

int ep_workload_register(const ep_workload *w) {
    if (!w || !w->name || !w->prepare || !w->run || s_nwl >= EP_MAX_WORKLOADS) return -1;
    for (size_t i = 0; i < s_nwl; i++)
        if (strcmp(s_wl[i]->name, w->name) == 0) return -1;
    s_wl[s_nwl++] = w;
    return 0;
}

uint32_t ep_xorshift32(uint32_t *state) {
    uint32_t x = *state ? *state : 1u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

void ep_fill_seeded(int8_t *dst, size_t n, uint32_t seed) {
    uint32_t st = seed ? seed : 1u;
    for (size_t i = 0; i < n; i++) dst[i] = (int8_t)(uint8_t)ep_xorshift32(&st);
}

/* ---- sending ------------------------------------------------------------------------------- */

static uint8_t *payload_buf(void) { return s_raw + EP_HDR_BYTES; }

static void send_wire(const uint8_t *p, size_t n) {
    if (n && ep_port_write(p, n) == 0) s_tx_frames++;
}

/* Encode the payload built in s_raw as a reply to (req_type, seq) and cache it. */
static void reply(uint8_t req_type, uint8_t type, uint16_t seq, const ep_mp_w *w) {
    if (w->err) return; /* cannot happen with the fixed replies below; never send a torn one */
    if (s_keep_cache) {
        send_wire(s_uncached, ep_frame_encode(s_uncached, sizeof s_uncached, s_raw, type,
                                              EP_FLAG_DEVICE, seq, s_boot, w->len));
        return;
    }
    s_reply_len = ep_frame_encode(s_reply, sizeof s_reply, s_raw, type, EP_FLAG_DEVICE, seq,
                                  s_boot, w->len);
    s_reply_type = req_type;
    s_reply_seq = seq;
    s_reply_valid = s_reply_len != 0;
    send_wire(s_reply, s_reply_len);
}

static void reply_error(uint8_t req_type, uint16_t seq, int code, const char *msg, int64_t detail,
                        int has_detail) {
    ep_mp_w w;
    ep_mp_w_init(&w, payload_buf(), EP_MAX_PAYLOAD);
    ep_mp_map(&w, has_detail ? 3 : 2);
    ep_mp_kv_uint(&w, "code", (uint64_t)code);
    ep_mp_kv_str(&w, "msg", msg);
    if (has_detail) {
        ep_mp_str(&w, "detail");
        ep_mp_int(&w, detail);
    }
    reply(req_type, EP_T_ERROR, seq, &w);
}

static void begin_reply(ep_mp_w *w) { ep_mp_w_init(w, payload_buf(), EP_MAX_PAYLOAD); }

/* ---- payload access ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n;
} ep_payload;

/* -1 malformed, 0 absent (keep *v), 1 found. */
static int get_uint(ep_payload pl, const char *key, uint64_t max, uint64_t *v) {
    ep_mp_obj o;
    if (!ep_mp_find(pl.p, pl.n, key, &o, NULL)) return 0;
    if (o.kind != EP_MP_UINT || o.u > max) return -1;
    *v = o.u;
    return 1;
}

static int get_bool(ep_payload pl, const char *key, int *v) {
    ep_mp_obj o;
    if (!ep_mp_find(pl.p, pl.n, key, &o, NULL)) return 0;
    if (o.kind == EP_MP_NIL) return 0;
    if (o.kind != EP_MP_BOOL) return -1;
    *v = (int)o.u;
    return 1;
}

static int get_str(ep_payload pl, const char *key, const uint8_t **s, uint32_t *len) {
    ep_mp_obj o;
    if (!ep_mp_find(pl.p, pl.n, key, &o, NULL)) return 0;
    if (o.kind != EP_MP_STR) return -1;
    *s = o.ptr;
    *len = o.len;
    return 1;
}

static int str_is(const uint8_t *s, uint32_t len, const char *lit) {
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* ---- commands ------------------------------------------------------------------------------ */

static void cmd_hello(uint16_t seq, ep_payload pl) {
    ep_mp_obj o;
    ep_mp_r r;
    int ok = 0;
    if (ep_mp_find(pl.p, pl.n, "v", &o, &r)) {
        if (o.kind != EP_MP_ARRAY) {
            reply_error(EP_T_HELLO, seq, EP_E_MALFORMED, "HELLO: v must be an array", 0, 0);
            return;
        }
        for (uint32_t k = 0; k < o.len; k++) {
            ep_mp_obj e;
            if (ep_mp_read(&r, &e)) break;
            if (e.kind == EP_MP_UINT && e.u == EP_PROTO_VERSION) ok = 1;
        }
    }
    if (!ok) {
        reply_error(EP_T_HELLO, seq, EP_E_VERSION, "no common protocol version", EP_PROTO_VERSION,
                    1);
        return;
    }
    s_loading = NULL;
    ep_mp_w w;
    begin_reply(&w);
    ep_mp_map(&w, 14);
    ep_mp_kv_uint(&w, "v", EP_PROTO_VERSION);
    ep_mp_kv_str(&w, "fw", EP_FW_VERSION);
    ep_mp_kv_str(&w, "board", ep_port_board());
    ep_mp_kv_uint(&w, "cpu_hz", ep_port_cpu_hz());
    ep_mp_kv_str(&w, "cyc_src", ep_port_cycle_source());
    ep_mp_kv_uint(&w, "cyc_hz", ep_port_cycle_hz());
    ep_mp_kv_uint(&w, "ram", ep_port_ram_bytes());
    ep_mp_kv_uint(&w, "flash", ep_port_flash_bytes());
    ep_mp_kv_uint(&w, "max_payload", EP_MAX_PAYLOAD);
    ep_mp_kv_uint(&w, "model_cap", EP_MODEL_CAP);
    ep_mp_kv_uint(&w, "input_cap", EP_INPUT_CAP);
    ep_mp_kv_uint(&w, "flash_slot", 0);
    ep_mp_str(&w, "workloads");
    ep_mp_array(&w, (uint32_t)s_nwl);
    for (size_t i = 0; i < s_nwl; i++) ep_mp_str(&w, s_wl[i]->name);
    ep_mp_kv_uint(&w, "stack", ep_stack_size());
    reply(EP_T_HELLO, EP_T_HELLO | EP_T_REPLY, seq, &w);
}

static void cmd_ping(uint16_t seq, ep_payload pl) {
    ep_mp_obj o;
    ep_mp_w w;
    begin_reply(&w);
    if (ep_mp_find(pl.p, pl.n, "d", &o, NULL) && o.kind == EP_MP_BIN &&
        o.len <= EP_MAX_PAYLOAD - 8) {
        ep_mp_map(&w, 1);
        ep_mp_str(&w, "d");
        ep_mp_bin(&w, o.ptr, o.len);
    } else {
        ep_mp_map(&w, 0);
    }
    reply(EP_T_PING, EP_T_PING | EP_T_REPLY, seq, &w);
}

static void cmd_load_begin(uint16_t seq, ep_payload pl) {
    const uint8_t *kind = NULL, *slot = NULL;
    uint32_t kind_len = 0, slot_len = 0;
    uint64_t size = 0, crc = 0;
    if (get_str(pl, "kind", &kind, &kind_len) != 1 || get_uint(pl, "size", 0xFFFFFFFFu, &size) != 1 ||
        get_uint(pl, "crc", 0xFFFFFFFFu, &crc) != 1 || get_str(pl, "slot", &slot, &slot_len) < 0) {
        reply_error(EP_T_LOAD_BEGIN, seq, EP_E_MALFORMED, "LOAD_BEGIN needs kind, size and crc",
                    0, 0);
        return;
    }
    ep_slot *target;
    if (str_is(kind, kind_len, "model"))
        target = &s_slot_model;
    else if (str_is(kind, kind_len, "input"))
        target = &s_slot_input;
    else {
        reply_error(EP_T_LOAD_BEGIN, seq, EP_E_MALFORMED, "LOAD_BEGIN: kind is model or input", 0,
                    0);
        return;
    }
    if (slot && !str_is(slot, slot_len, "ram")) {
        reply_error(EP_T_LOAD_BEGIN, seq, EP_E_UNSUPPORTED, "this port has no flash slot", 0, 0);
        return;
    }
    if (size > target->cap) {
        reply_error(EP_T_LOAD_BEGIN, seq, EP_E_TOO_LARGE, "upload larger than the buffer",
                    (int64_t)target->cap, 1);
        return;
    }
    target->size = (size_t)size;
    target->crc = (uint32_t)crc;
    target->state = 1;
    if (target == &s_slot_model) s_model_gen++;
    s_loading = target;
    ep_mp_w w;
    begin_reply(&w);
    ep_mp_map(&w, 2);
    ep_mp_kv_uint(&w, "cap", target->cap);
    ep_mp_kv_uint(&w, "chunk", EP_CHUNK_MAX);
    reply(EP_T_LOAD_BEGIN, EP_T_LOAD_BEGIN | EP_T_REPLY, seq, &w);
}

static void cmd_load_data(uint16_t seq, ep_payload pl) {
    uint64_t off = 0;
    ep_mp_obj d;
    if (get_uint(pl, "o", 0xFFFFFFFFu, &off) != 1 || !ep_mp_find(pl.p, pl.n, "d", &d, NULL) ||
        d.kind != EP_MP_BIN) {
        reply_error(EP_T_LOAD_DATA, seq, EP_E_MALFORMED, "LOAD_DATA needs o and d (bin)", 0, 0);
        return;
    }
    if (!s_loading) {
        reply_error(EP_T_LOAD_DATA, seq, EP_E_STATE, "LOAD_DATA without LOAD_BEGIN", 0, 0);
        return;
    }
    if (off > s_loading->size || d.len > s_loading->size - off) {
        reply_error(EP_T_LOAD_DATA, seq, EP_E_RANGE, "LOAD_DATA past the announced size", 0, 0);
        return;
    }
    memcpy(s_loading->buf + off, d.ptr, d.len);
    ep_mp_w w;
    begin_reply(&w);
    ep_mp_map(&w, 1);
    ep_mp_kv_uint(&w, "o", off + d.len);
    reply(EP_T_LOAD_DATA, EP_T_LOAD_DATA | EP_T_REPLY, seq, &w);
}

static void cmd_load_end(uint16_t seq) {
    if (!s_loading) {
        reply_error(EP_T_LOAD_END, seq, EP_E_STATE, "LOAD_END without LOAD_BEGIN", 0, 0);
        return;
    }
    ep_slot *t = s_loading;
    uint32_t crc = ep_crc32(0, t->buf, t->size);
    s_loading = NULL;
    if (crc != t->crc) {
        t->state = 0;
        reply_error(EP_T_LOAD_END, seq, EP_E_LOAD_CRC, "CRC of the uploaded bytes differs",
                    (int64_t)crc, 1);
        return;
    }
    t->state = 2;
    ep_mp_w w;
    begin_reply(&w);
    ep_mp_map(&w, 2);
    ep_mp_kv_uint(&w, "size", t->size);
    ep_mp_kv_uint(&w, "crc", crc);
    reply(EP_T_LOAD_END, EP_T_LOAD_END | EP_T_REPLY, seq, &w);
}

static void cmd_telemetry(uint16_t seq) {
    ep_mp_w w;
    begin_reply(&w);
    ep_mp_map(&w, 11);
    ep_mp_kv_uint(&w, "uptime_ms", ep_port_millis());
    ep_mp_kv_uint(&w, "heap", ep_heap_in_use());
    ep_mp_kv_uint(&w, "heap_hwm", ep_heap_hwm());
    ep_mp_kv_uint(&w, "stack_hwm", ep_stack_hwm());
    ep_mp_kv_uint(&w, "stack", ep_stack_size());
    ep_mp_kv_uint(&w, "rx_frames", s_dec.good);
    ep_mp_kv_uint(&w, "rx_bad", s_dec.bad);
    ep_mp_kv_uint(&w, "rx_overflow", s_dec.overflow);
    ep_mp_kv_uint(&w, "tx_frames", s_tx_frames);
    ep_mp_kv_uint(&w, "retx", s_retx);
    ep_mp_kv_uint(&w, "dups", s_dups);
    reply(EP_T_TELEMETRY, EP_T_TELEMETRY | EP_T_REPLY, seq, &w);
}

static void cmd_reset(uint16_t seq) {
    ep_mp_w w;
    begin_reply(&w);
    ep_mp_map(&w, 0);
    reply(EP_T_RESET, EP_T_RESET | EP_T_REPLY, seq, &w);
    ep_port_reset();
}

/* ---- RUN ----------------------------------------------------------------------------------- */

typedef enum { WAIT_ACKED, WAIT_STOPPED, WAIT_GAVE_UP } wait_outcome;

static void handle_frame(const ep_frame *f, int in_run);

static uint16_t s_run_seq;
static uint32_t s_run_index; /* index of the RESULT awaiting its ACK */
static int s_run_acked, s_run_stopped;
static int s_run_last; /* the RESULT awaiting its ACK is the run's last */
/* A request that arrived while the last RESULT awaited its ACK: the host sends it only after it
   has that RESULT, so it acknowledges it (the ACK itself was lost). It is handled once the run
   has ended, as outside a run; its payload stays in the decoder's buffer until then, because
   wait_ack() reads one byte at a time and feeds nothing after the frame that ends the wait. */
static ep_frame s_deferred;
static int s_deferred_valid;

static wait_outcome wait_ack(void) {
    s_run_acked = s_run_stopped = 0;
    for (uint32_t tries = 0;; tries++) {
        uint32_t t0 = ep_port_millis();
        while (ep_port_millis() - t0 < EP_RESULT_RETX_MS) {
            /* One byte at a time: the bytes after the frame that ends this wait (the host's next
               request, often in the same write as the ACK) belong to the main loop, outside the
               run; decoded here they would be refused E_BUSY. */
            uint8_t byte;
            int n = ep_port_read(&byte, 1, EP_RESULT_RETX_MS - (ep_port_millis() - t0));
            if (n < 0) return WAIT_GAVE_UP;
            ep_frame f;
            if (n == 1 && ep_decoder_feed(&s_dec, byte, &f)) handle_frame(&f, 1);
            if (s_run_stopped) return WAIT_STOPPED;
            if (s_run_acked) return WAIT_ACKED;
        }
        if (tries >= EP_RESULT_RETX_TRIES) return WAIT_GAVE_UP;
        s_retx++;
        send_wire(s_stream, s_stream_len);
    }
}

static const ep_workload *find_workload(const uint8_t *name, uint32_t len) {
    for (size_t i = 0; i < s_nwl; i++)
        if (str_is(name, len, s_wl[i]->name)) return s_wl[i];
    return NULL;
}

static int prepare(const ep_workload *wl, uint16_t seq) {
    if (s_prepared == wl && s_prepared_gen == s_model_gen) return 0;
    const char *msg = "workload refused its data";
    int detail = 0;
    s_prepared = NULL;
    ep_heap_reset();
    memset(&s_shape, 0, sizeof s_shape);
    int have = s_slot_model.state == 2;
    int rc = wl->prepare(have ? s_slot_model.buf : NULL, have ? s_slot_model.size : 0, &s_shape,
                         &msg, &detail);
    if (rc != 0 || !s_shape.in || !s_shape.out || s_shape.layers > EP_MAX_LAYERS) {
        reply_error(EP_T_RUN, seq, EP_E_MODEL, rc ? msg : "workload shape invalid", detail, 1);
        return -1;
    }
    s_arena = ep_heap_in_use();
    s_prepared = wl;
    s_prepared_gen = s_model_gen;
    return 0;
}

static size_t encode_result(uint32_t i, uint64_t cyc, int layers, int with_out) {
    ep_mp_w w;
    ep_mp_w_init(&w, payload_buf(), EP_MAX_PAYLOAD);
    size_t nl = layers ? s_shape.layers : 0;
    int out = with_out && s_shape.out_bytes <= EP_MAX_PAYLOAD - 128 - 5 * nl;
    ep_mp_map(&w, 6 + (nl ? 1 : 0) + (out ? 1 : 0));
    ep_mp_kv_uint(&w, "i", i);
    ep_mp_kv_uint(&w, "cyc", cyc);
    ep_mp_kv_uint(&w, "heap", ep_heap_in_use());
    ep_mp_kv_uint(&w, "heap_hwm", ep_heap_hwm());
    ep_mp_kv_uint(&w, "stack_hwm", ep_stack_hwm());
    ep_mp_kv_uint(&w, "digest",
                  ep_crc32(0, (const uint8_t *)s_shape.out, s_shape.out_bytes));
    if (nl) {
        ep_mp_str(&w, "lc");
        ep_mp_array(&w, (uint32_t)nl);
        for (size_t k = 0; k < nl; k++) ep_mp_uint(&w, s_layer_cycles[k]);
    }
    if (out) {
        ep_mp_str(&w, "o");
        ep_mp_bin(&w, (const uint8_t *)s_shape.out, s_shape.out_bytes);
    }
    if (w.err) return 0;
    return ep_frame_encode(s_stream, sizeof s_stream, s_raw, EP_T_RESULT, EP_FLAG_DEVICE,
                           s_run_seq, s_boot, w.len);
}

static void cmd_run(uint16_t seq, ep_payload pl) {
    const uint8_t *name = NULL, *input = NULL;
    uint32_t name_len = 0, input_len = 0;
    uint64_t n = 1, warmup = 0, seed = 1;
    int layers = 0, with_out = 0;
    if (get_str(pl, "w", &name, &name_len) != 1 || get_uint(pl, "n", 0x80000000u, &n) < 0 ||
        get_uint(pl, "warmup", 0x80000000u, &warmup) < 0 ||
        get_uint(pl, "seed", 0xFFFFFFFFu, &seed) < 0 || get_bool(pl, "layers", &layers) < 0 ||
        get_bool(pl, "out", &with_out) < 0 || get_str(pl, "input", &input, &input_len) < 0 ||
        n < 1) {
        reply_error(EP_T_RUN, seq, EP_E_MALFORMED, "RUN: bad or missing w, n, warmup or seed", 0,
                    0);
        return;
    }
    int loaded = 0;
    if (input) {
        if (str_is(input, input_len, "loaded"))
            loaded = 1;
        else if (!str_is(input, input_len, "seed")) {
            reply_error(EP_T_RUN, seq, EP_E_MALFORMED, "RUN: input is seed or loaded", 0, 0);
            return;
        }
    }
    const ep_workload *wl = find_workload(name, name_len);
    if (!wl) {
        reply_error(EP_T_RUN, seq, EP_E_WORKLOAD, "RUN: no such workload", 0, 0);
        return;
    }
    if (prepare(wl, seq)) return;
    if (loaded) {
        if (s_slot_input.state != 2) {
            reply_error(EP_T_RUN, seq, EP_E_STATE, "RUN: no input uploaded", 0, 0);
            return;
        }
        if (s_slot_input.size != s_shape.in_bytes) {
            reply_error(EP_T_RUN, seq, EP_E_INPUT, "RUN: uploaded input size differs",
                        (int64_t)s_shape.in_bytes, 1);
            return;
        }
        memcpy(s_shape.in, s_slot_input.buf, s_shape.in_bytes);
    } else {
        ep_fill_seeded(s_shape.in, s_shape.in_bytes, (uint32_t)seed);
    }
    ep_mp_w w;
    begin_reply(&w);
    size_t nl = layers ? s_shape.layers : 0;
    ep_mp_map(&w, 6);
    ep_mp_kv_uint(&w, "n", n);
    ep_mp_kv_uint(&w, "warmup", warmup);
    ep_mp_kv_uint(&w, "in_bytes", s_shape.in_bytes);
    ep_mp_kv_uint(&w, "out_bytes", s_shape.out_bytes);
    ep_mp_kv_uint(&w, "arena", s_arena);
    ep_mp_str(&w, "ops");
    ep_mp_array(&w, (uint32_t)nl);
    for (size_t k = 0; k < nl; k++) {
        const char *op = s_shape.layer_op ? s_shape.layer_op(k) : NULL;
        ep_mp_str(&w, op ? op : "?");
    }
    if (w.err) { /* too many op names for one frame: send none rather than a torn reply */
        begin_reply(&w);
        ep_mp_map(&w, 6);
        ep_mp_kv_uint(&w, "n", n);
        ep_mp_kv_uint(&w, "warmup", warmup);
        ep_mp_kv_uint(&w, "in_bytes", s_shape.in_bytes);
        ep_mp_kv_uint(&w, "out_bytes", s_shape.out_bytes);
        ep_mp_kv_uint(&w, "arena", s_arena);
        ep_mp_str(&w, "ops");
        ep_mp_array(&w, 0);
    }
    reply(EP_T_RUN, EP_T_RUN | EP_T_REPLY, seq, &w);

    uint32_t *lc = nl ? s_layer_cycles : NULL;
#ifdef EP_FUZZING
    if (warmup > 2) warmup = 2; /* keep fuzz iterations short; the protocol is the target */
    if (n > 2) n = 2;
#endif
    for (uint64_t k = 0; k < warmup; k++) {
        if (wl->run(lc) != 0) {
            reply_error(EP_T_RUN, seq, EP_E_MODEL, "workload failed during warm-up", 0, 0);
            return;
        }
    }
    s_run_seq = seq;
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        uint64_t t0 = ep_port_cycles();
        int rc = wl->run(lc);
        uint64_t t1 = ep_port_cycles();
        if (rc != 0) {
            reply_error(EP_T_RUN, seq, EP_E_MODEL, "workload failed", rc, 1);
            return;
        }
        s_run_index = i;
        s_run_last = i + 1u == (uint32_t)n;
        s_stream_len = encode_result(i, t1 - t0, layers, with_out);
        send_wire(s_stream, s_stream_len);
        wait_outcome out = wait_ack();
        if (out == WAIT_STOPPED) return;
        if (out == WAIT_GAVE_UP) {
            reply_error(EP_T_RUN, seq, EP_E_TIMEOUT, "RESULT never acknowledged", i, 1);
            return;
        }
    }
}

static void cmd_stop(uint16_t seq, int in_run) {
    ep_mp_w w;
    begin_reply(&w);
    ep_mp_map(&w, 1);
    ep_mp_str(&w, "stopped");
    if (in_run)
        ep_mp_uint(&w, s_run_index + 1u);
    else
        ep_mp_nil(&w);
    reply(EP_T_STOP, EP_T_STOP | EP_T_REPLY, seq, &w);
    if (in_run) s_run_stopped = 1;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void dispatch(const ep_frame *f, int in_run);

static void handle_frame(const ep_frame *f, int in_run) {
    /* mid-run, only STOP's reply may replace the cached RUN reply (see s_uncached) */
    s_keep_cache = in_run && f->type != EP_T_STOP;
    dispatch(f, in_run);
    s_keep_cache = 0;
}

static void dispatch(const ep_frame *f, int in_run) {
    if (f->flags & EP_FLAG_DEVICE) return; /* our own frame echoed back, or another device */
    ep_payload pl = {f->payload, f->payload_len};
    if (f->type == EP_T_ACK) {
        uint64_t i = 0;
        if (in_run && f->seq == s_run_seq && get_uint(pl, "i", 0xFFFFFFFFu, &i) == 1 &&
            i == s_run_index)
            s_run_acked = 1;
        return; /* a late or stray ACK needs no answer */
    }
    if (s_reply_valid && f->type == s_reply_type && f->seq == s_reply_seq &&
        f->type != EP_T_HELLO) {
        s_dups++;
        send_wire(s_reply, s_reply_len);
        return;
    }
    if (f->boot != 0 && f->boot != s_boot && f->type != EP_T_HELLO) {
        reply_error(f->type, f->seq, EP_E_BOOT, "request for another boot of this device",
                    (int64_t)s_boot, 1);
        return;
    }
    if (ep_mp_check_map(pl.p, pl.n) != 0) {
        reply_error(f->type, f->seq, EP_E_MALFORMED, "payload is not a msgpack map", 0, 0);
        return;
    }
    if (in_run) {
        if (f->type == EP_T_STOP) {
            cmd_stop(f->seq, 1); /* cached: a lost STOP reply is answered on retransmission */
            return;
        }
        switch (f->type) {
        case EP_T_PING: cmd_ping(f->seq, pl); break;
        case EP_T_TELEMETRY: cmd_telemetry(f->seq); break;
        default:
            if (s_run_last && !s_deferred_valid) { /* the lost last ACK: see s_deferred */
                s_deferred = *f;
                s_deferred_valid = 1;
                s_run_acked = 1;
                break;
            }
            reply_error(f->type, f->seq, EP_E_BUSY, "busy running; send STOP first", 0, 0);
            break;
        }
        return;
    }
    switch (f->type) {
    case EP_T_HELLO: cmd_hello(f->seq, pl); break;
    case EP_T_PING: cmd_ping(f->seq, pl); break;
    case EP_T_LOAD_BEGIN: cmd_load_begin(f->seq, pl); break;
    case EP_T_LOAD_DATA: cmd_load_data(f->seq, pl); break;
    case EP_T_LOAD_END: cmd_load_end(f->seq); break;
    case EP_T_RUN: cmd_run(f->seq, pl); break;
    case EP_T_STOP: cmd_stop(f->seq, 0); break;
    case EP_T_RESET: cmd_reset(f->seq); break;
    case EP_T_TELEMETRY: cmd_telemetry(f->seq); break;
    default: reply_error(f->type, f->seq, EP_E_TYPE, "unknown message type", f->type, 1); break;
    }
}

/* Feed bytes to the engine; for tests and fuzzing the host build calls this directly. */
void ep_core_feed(const uint8_t *p, size_t n) {
    for (size_t k = 0; k < n; k++) {
        ep_frame f;
        if (!ep_decoder_feed(&s_dec, p[k], &f)) continue;
        handle_frame(&f, 0);
        while (s_deferred_valid) { /* before the next byte overwrites its payload */
            f = s_deferred;
            s_deferred_valid = 0;
            handle_frame(&f, 0);
        }
    }
}

void ep_core_start(void) {
    ep_decoder_init(&s_dec, s_rx, sizeof s_rx);
    s_boot = ep_port_boot_id();
    ep_workload_register(&ep_wl_dot);
#ifdef EP_HAVE_MODEL
    ep_workload_register(&ep_wl_model);
#endif
    ep_mp_w w;
    begin_reply(&w);
    ep_mp_map(&w, 2);
    ep_mp_str(&w, "v");
    ep_mp_array(&w, 1);
    ep_mp_uint(&w, EP_PROTO_VERSION);
    ep_mp_kv_str(&w, "fw", EP_FW_VERSION);
    uint8_t lead = 0;
    (void)ep_port_write(&lead, 1); /* terminate whatever the host's decoder holds */
    size_t len = ep_frame_encode(s_stream, sizeof s_stream, s_raw, EP_T_BOOT, EP_FLAG_DEVICE, 0,
                                 s_boot, w.len);
    send_wire(s_stream, len);
}

void ep_main(void) {
    ep_stack_paint();
    ep_core_start();
    for (;;) {
        uint8_t buf[256];
        int n = ep_port_read(buf, sizeof buf, 1000);
        if (n < 0) return; /* link gone (host port); boards never get here */
        ep_core_feed(buf, (size_t)n);
    }
}
