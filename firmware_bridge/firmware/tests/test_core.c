/* Unit tests of the firmware core: CRC, COBS, msgpack, frames, and the protocol engine driven
 * through a memory port (tests/mem_port.c) playing the host. Run by ctest, plain and under
 * ASan/UBSan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ep_cobs.h"
#include "ep_crc32.h"
#include "ep_frame.h"
#include "ep_msgpack.h"
#include "ep_proto.h"
#include "mem_port.h"

static int failures;
#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);           \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

static uint32_t rng = 7;
static uint32_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void test_crc(void) {
    CHECK(ep_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u);
    CHECK(ep_crc32(0, NULL, 0) == 0);
    /* incremental == one shot */
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)next_rand();
    CHECK(ep_crc32(ep_crc32(0, buf, 100), buf + 100, 200) == ep_crc32(0, buf, 300));
}

static void test_cobs(void) {
    static uint8_t src[2000], enc[2100], dec[2100];
    size_t lens[] = {0, 1, 2, 253, 254, 255, 256, 508, 509, 1000, 2000};
    for (int pattern = 0; pattern < 4; pattern++) {
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            size_t n = lens[li];
            for (size_t i = 0; i < n; i++) {
                uint32_t r = next_rand();
                src[i] = pattern == 0 ? 0 : pattern == 1 ? (uint8_t)(1 + r % 255)
                                                           : (uint8_t)(r % (pattern == 2 ? 4 : 256));
            }
            size_t m = ep_cobs_encode(enc, sizeof enc, src, n);
            CHECK(m >= 1 && m <= n + n / 254 + 1);
            CHECK(memchr(enc, 0, m) == NULL);
            long d = ep_cobs_decode(dec, enc, m);
            CHECK(d == (long)n);
            CHECK(n == 0 || memcmp(dec, src, n) == 0);
            /* too small a buffer is refused, never overrun */
            if (m > 1) CHECK(ep_cobs_encode(enc, m - 1, src, n) == 0);
        }
    }
    uint8_t bad1[] = {0x05, 1, 2};    /* code points past the end */
    uint8_t bad2[] = {0x03, 1, 0, 4}; /* zero inside */
    CHECK(ep_cobs_decode(dec, bad1, sizeof bad1) == -1);
    CHECK(ep_cobs_decode(dec, bad2, sizeof bad2) == -1);
}

static void test_msgpack(void) {
    uint8_t buf[512];
    ep_mp_w w;
    ep_mp_w_init(&w, buf, sizeof buf);
    uint64_t us[] = {0, 127, 128, 255, 256, 65535, 65536, 0xFFFFFFFFu, 0x100000000ull,
                     0xFFFFFFFFFFFFFFFFull};
    int64_t is[] = {-1, -32, -33, -128, -129, -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1,
                    INT64_MIN};
    ep_mp_map(&w, 4);
    ep_mp_str(&w, "u");
    ep_mp_array(&w, 10);
    for (int k = 0; k < 10; k++) ep_mp_uint(&w, us[k]);
    ep_mp_str(&w, "i");
    ep_mp_array(&w, 10);
    for (int k = 0; k < 10; k++) ep_mp_int(&w, is[k]);
    ep_mp_str(&w, "b");
    ep_mp_bin(&w, (const uint8_t *)"xyz", 3);
    ep_mp_kv_str(&w, "long-key-of-more-than-thirty-two-chars", "v");
    CHECK(!w.err);
    CHECK(ep_mp_check_map(buf, w.len) == 0);
    ep_mp_obj o;
    ep_mp_r r;
    CHECK(ep_mp_find(buf, w.len, "u", &o, &r) == 1 && o.kind == EP_MP_ARRAY && o.len == 10);
    for (int k = 0; k < 10; k++) {
        ep_mp_obj e;
        CHECK(ep_mp_read(&r, &e) == 0 && e.kind == EP_MP_UINT && e.u == us[k]);
    }
    CHECK(ep_mp_find(buf, w.len, "i", &o, &r) == 1);
    for (int k = 0; k < 10; k++) {
        ep_mp_obj e;
        CHECK(ep_mp_read(&r, &e) == 0 && e.kind == EP_MP_INT && e.i == is[k]);
    }
    CHECK(ep_mp_find(buf, w.len, "b", &o, NULL) == 1 && o.kind == EP_MP_BIN && o.len == 3);
    CHECK(ep_mp_find(buf, w.len, "long-key-of-more-than-thirty-two-chars", &o, NULL) == 1 &&
          o.kind == EP_MP_STR && o.len == 1);
    CHECK(ep_mp_find(buf, w.len, "absent", &o, NULL) == 0);
    /* every truncation is malformed, never an over-read (ASan watches) */
    for (size_t cut = 1; cut < w.len; cut++) CHECK(ep_mp_check_map(buf, cut) != 0);
    uint8_t flt[] = {0x81, 0xA1, 'x', 0xCB, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(ep_mp_check_map(flt, sizeof flt) != 0);
    uint8_t huge[] = {0xDE, 0xFF, 0xFF}; /* map of 65535 pairs in 3 bytes */
    CHECK(ep_mp_check_map(huge, sizeof huge) != 0);
    uint8_t deep[64];
    memset(deep, 0x91, sizeof deep); /* nested arrays deeper than allowed */
    uint8_t m1[66] = {0x81, 0xA1, 'x'};
    memcpy(m1 + 3, deep, 63);
    CHECK(ep_mp_check_map(m1, sizeof m1) != 0);
    ep_mp_w_init(&w, buf, 3);
    ep_mp_str(&w, "too long");
    CHECK(w.err);
}

static void test_frames(void) {
    uint8_t raw[EP_MAX_PAYLOAD + EP_FRAME_OVERHEAD], wire[EP_WIRE_MAX], rx[EP_WIRE_MAX];
    ep_decoder d;
    ep_frame f;
    ep_decoder_init(&d, rx, sizeof rx);
    for (size_t i = 0; i < 300; i++) raw[EP_HDR_BYTES + i] = (uint8_t)(i % 7);
    size_t n = ep_frame_encode(wire, sizeof wire, raw, 0x42, 1, 0xBEEF, 0xCAFEBABEu, 300);
    CHECK(n > 300 && wire[n - 1] == 0);
    /* garbage, then the frame: the decoder resynchronises on the delimiter */
    uint8_t junk[] = {1, 2, 3, 0, 0xFF, 0x13, 0};
    int got = 0;
    for (size_t i = 0; i < sizeof junk; i++) got += ep_decoder_feed(&d, junk[i], &f);
    CHECK(got == 0 && d.bad == 2);
    for (size_t i = 0; i < n; i++) got += ep_decoder_feed(&d, wire[i], &f);
    CHECK(got == 1 && f.type == 0x42 && f.flags == 1 && f.seq == 0xBEEF && f.boot == 0xCAFEBABEu &&
          f.payload_len == 300 && f.payload[8] == 1);
    /* a flipped bit anywhere fails the CRC (or COBS), never yields a frame */
    for (size_t at = 0; at + 1 < n; at++) {
        for (int bit = 0; bit < 8; bit += 3) {
            uint8_t b = wire[at] ^ (uint8_t)(1u << bit);
            int ok = 0;
            ep_decoder_feed(&d, 0, &f);
            for (size_t i = 0; i < n; i++) ok += ep_decoder_feed(&d, i == at ? b : wire[i], &f);
            CHECK(ok == 0 || b == 0);
        }
    }
    /* a frame longer than the buffer is dropped as a whole, and the next one still decodes */
    ep_decoder small;
    uint8_t sbuf[64];
    ep_decoder_init(&small, sbuf, sizeof sbuf);
    got = 0;
    for (size_t i = 0; i < n; i++) got += ep_decoder_feed(&small, wire[i], &f);
    CHECK(got == 0 && small.overflow == 1);
    size_t n2 = ep_frame_encode(wire, sizeof wire, raw, 7, 0, 1, 2, 10);
    for (size_t i = 0; i < n2; i++) got += ep_decoder_feed(&small, wire[i], &f);
    CHECK(got == 1 && f.type == 7 && f.payload_len == 10);
    CHECK(ep_frame_encode(wire, 20, raw, 7, 0, 1, 2, 300) == 0);
}

/* ---- the engine, with this test as the host ----------------------------------------------- */

static uint8_t h_raw[EP_MAX_PAYLOAD + EP_FRAME_OVERHEAD], h_wire[EP_WIRE_MAX];
static uint8_t h_rx[EP_WIRE_MAX * 4];
static ep_decoder h_dec;
static size_t h_seen; /* bytes of the port's output already decoded */

typedef struct {
    uint8_t type;
    uint16_t seq;
    uint32_t boot;
    uint8_t payload[EP_MAX_PAYLOAD];
    size_t len;
} frame_copy;

static frame_copy frames[64];
static size_t nframes;

static void collect(void) {
    size_t n;
    const uint8_t *out = mem_port_out(&n);
    for (; h_seen < n; h_seen++) {
        ep_frame f;
        if (ep_decoder_feed(&h_dec, out[h_seen], &f) && nframes < 64) {
            frame_copy *c = &frames[nframes++];
            c->type = f.type;
            c->seq = f.seq;
            c->boot = f.boot;
            memcpy(c->payload, f.payload, f.payload_len);
            c->len = f.payload_len;
        }
    }
}

static void reset_host(void) {
    mem_port_clear_out();
    h_seen = 0;
    nframes = 0;
}

static void send(uint8_t type, uint16_t seq, uint32_t boot, const ep_mp_w *w) {
    size_t n = ep_frame_encode(h_wire, sizeof h_wire, h_raw, type, 0, seq, boot, w ? w->len : 0);
    ep_core_feed(h_wire, n);
}

static void start_payload(ep_mp_w *w) { ep_mp_w_init(w, h_raw + EP_HDR_BYTES, EP_MAX_PAYLOAD); }

static uint64_t get_u(const frame_copy *c, const char *key) {
    ep_mp_obj o;
    if (ep_mp_find(c->payload, c->len, key, &o, NULL) != 1 || o.kind != EP_MP_UINT) return ~0ull;
    return o.u;
}

/* The host side of RUN: acknowledge every RESULT (except the first `drop_first` copies). */
static int drop_first;
static uint16_t run_seq;
static size_t acked;
static void ack_results(void) {
    size_t before = nframes;
    collect();
    for (size_t k = before; k < nframes; k++) {
        if (frames[k].type != EP_T_RESULT) continue;
        if (drop_first > 0) {
            drop_first--;
            continue;
        }
        ep_mp_w w;
        start_payload(&w);
        ep_mp_map(&w, 1);
        ep_mp_kv_uint(&w, "i", get_u(&frames[k], "i"));
        size_t n = ep_frame_encode(h_wire, sizeof h_wire, h_raw, EP_T_ACK, 0, run_seq,
                                   0x12345678u, w.len);
        mem_port_push(h_wire, n);
        acked++;
    }
}

static void test_engine(void) {
    ep_decoder_init(&h_dec, h_rx, sizeof h_rx);
    ep_core_start();
    collect();
    CHECK(nframes == 1 && frames[0].type == EP_T_BOOT && frames[0].boot == 0x12345678u);
    reset_host();

    ep_mp_w w;
    start_payload(&w);
    ep_mp_map(&w, 1);
    ep_mp_str(&w, "v");
    ep_mp_array(&w, 2);
    ep_mp_uint(&w, 1);
    ep_mp_uint(&w, 9);
    send(EP_T_HELLO, 1, 0, &w);
    collect();
    CHECK(nframes == 1 && frames[0].type == (EP_T_HELLO | EP_T_REPLY) && frames[0].seq == 1);
    CHECK(get_u(&frames[0], "v") == 1 && get_u(&frames[0], "max_payload") == EP_MAX_PAYLOAD);
    CHECK(get_u(&frames[0], "cyc_hz") == 1000000u);
    reset_host();

    /* no common version */
    start_payload(&w);
    ep_mp_map(&w, 1);
    ep_mp_str(&w, "v");
    ep_mp_array(&w, 1);
    ep_mp_uint(&w, 2);
    send(EP_T_HELLO, 2, 0, &w);
    collect();
    CHECK(nframes == 1 && frames[0].type == EP_T_ERROR && get_u(&frames[0], "code") == EP_E_VERSION);
    reset_host();

    /* PING twice with one seq: the second is answered from the cache */
    start_payload(&w);
    ep_mp_map(&w, 1);
    ep_mp_str(&w, "d");
    ep_mp_bin(&w, (const uint8_t *)"abc", 3);
    send(EP_T_PING, 3, 0x12345678u, &w);
    start_payload(&w);
    ep_mp_map(&w, 0);
    send(EP_T_PING, 3, 0x12345678u, &w);
    collect();
    CHECK(nframes == 2 && frames[0].len == frames[1].len &&
          memcmp(frames[0].payload, frames[1].payload, frames[0].len) == 0);
    reset_host();

    /* a request for another boot */
    send(EP_T_TELEMETRY, 4, 0x11111111u, NULL);
    collect();
    CHECK(nframes == 1 && get_u(&frames[0], "code") == EP_E_BOOT);
    reset_host();

    /* unknown type, malformed payload */
    send(0x33, 5, 0, NULL);
    uint8_t junk[] = {0xC1};
    memcpy(h_raw + EP_HDR_BYTES, junk, 1);
    size_t n = ep_frame_encode(h_wire, sizeof h_wire, h_raw, EP_T_PING, 0, 6, 0, 1);
    ep_core_feed(h_wire, n);
    collect();
    CHECK(nframes == 2 && get_u(&frames[0], "code") == EP_E_TYPE &&
          get_u(&frames[1], "code") == EP_E_MALFORMED);
    reset_host();

    /* LOAD two rows for the dot workload, one chunk lost and resent out of order */
    static uint8_t rows[512];
    for (size_t i = 0; i < sizeof rows; i++) rows[i] = (uint8_t)next_rand();
    start_payload(&w);
    ep_mp_map(&w, 3);
    ep_mp_kv_str(&w, "kind", "model");
    ep_mp_kv_uint(&w, "size", sizeof rows);
    ep_mp_kv_uint(&w, "crc", ep_crc32(0, rows, sizeof rows));
    send(EP_T_LOAD_BEGIN, 7, 0, &w);
    uint16_t seq = 8;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t off = pass ? 0 : 256; off < (pass ? 256u : 512u); off += 256) {
            start_payload(&w);
            ep_mp_map(&w, 2);
            ep_mp_kv_uint(&w, "o", off);
            ep_mp_str(&w, "d");
            ep_mp_bin(&w, rows + off, 256);
            send(EP_T_LOAD_DATA, seq++, 0, &w);
        }
    }
    start_payload(&w);
    ep_mp_map(&w, 2);
    ep_mp_kv_uint(&w, "o", 500);
    ep_mp_str(&w, "d");
    ep_mp_bin(&w, rows, 20);
    send(EP_T_LOAD_DATA, seq++, 0, &w); /* past the end */
    send(EP_T_LOAD_END, seq++, 0, NULL);
    collect();
    CHECK(nframes == 5);
    CHECK(frames[0].type == (EP_T_LOAD_BEGIN | EP_T_REPLY) && get_u(&frames[0], "cap") > 0);
    CHECK(get_u(&frames[2], "o") == 256);
    CHECK(get_u(&frames[3], "code") == EP_E_RANGE);
    CHECK(frames[4].type == (EP_T_LOAD_END | EP_T_REPLY) && get_u(&frames[4], "size") == 512);
    reset_host();

    /* RUN 3 inferences; the first RESULT's ACK is "lost", so it is retransmitted */
    run_seq = seq++;
    drop_first = 1;
    acked = 0;
    mem_port_on_idle(ack_results);
    start_payload(&w);
    ep_mp_map(&w, 5);
    ep_mp_kv_str(&w, "w", "dot");
    ep_mp_kv_uint(&w, "n", 3);
    ep_mp_kv_uint(&w, "warmup", 1);
    ep_mp_kv_uint(&w, "seed", 42);
    ep_mp_str(&w, "out");
    ep_mp_bool(&w, 1);
    send(EP_T_RUN, run_seq, 0, &w);
    mem_port_on_idle(NULL);
    collect();
    CHECK(frames[0].type == (EP_T_RUN | EP_T_REPLY) && get_u(&frames[0], "out_bytes") == 2);
    size_t results = 0;
    for (size_t k = 1; k < nframes; k++) {
        CHECK(frames[k].type == EP_T_RESULT && frames[k].seq == run_seq);
        if (frames[k].type == EP_T_RESULT) results++;
    }
    CHECK(results == 4 && acked == 3);
    CHECK(get_u(&frames[1], "i") == 0 && get_u(&frames[2], "i") == 0 &&
          get_u(&frames[4], "i") == 2);
    CHECK(get_u(&frames[1], "cyc") == 1000);
    /* the output equals the reference arithmetic on the seeded input */
    {
        int8_t in[256];
        uint32_t st = 42;
        for (int i = 0; i < 256; i++) {
            st ^= st << 13;
            st ^= st >> 17;
            st ^= st << 5;
            in[i] = (int8_t)(uint8_t)st;
        }
        ep_mp_obj o;
        CHECK(ep_mp_find(frames[1].payload, frames[1].len, "o", &o, NULL) == 1 && o.len == 2);
        for (int r = 0; r < 2 && o.len == 2; r++) {
            int32_t acc = 0;
            for (int k = 0; k < 256; k++) acc += (int32_t)(int8_t)rows[r * 256 + k] * in[k];
            int32_t q = acc >> 10;
            q = q > 127 ? 127 : q < -128 ? -128 : q;
            CHECK((int8_t)o.ptr[r] == (int8_t)q);
        }
        CHECK(get_u(&frames[1], "digest") == ep_crc32(0, o.ptr, o.len));
    }
    reset_host();

    /* RUN never acknowledged: the device gives up with E_TIMEOUT, never hangs */
    start_payload(&w);
    ep_mp_map(&w, 2);
    ep_mp_kv_str(&w, "w", "dot");
    ep_mp_kv_uint(&w, "n", 2);
    send(EP_T_RUN, seq++, 0, &w);
    collect();
    CHECK(nframes == 3 + EP_RESULT_RETX_TRIES && frames[nframes - 1].type == EP_T_ERROR &&
          get_u(&frames[nframes - 1], "code") == EP_E_TIMEOUT);
    reset_host();

    /* unknown workload; model without a blob */
    start_payload(&w);
    ep_mp_map(&w, 1);
    ep_mp_kv_str(&w, "w", "nope");
    send(EP_T_RUN, seq++, 0, &w);
    collect();
    CHECK(nframes == 1 && get_u(&frames[0], "code") == EP_E_WORKLOAD);
    reset_host();

    /* LOAD_END with a wrong CRC */
    start_payload(&w);
    ep_mp_map(&w, 3);
    ep_mp_kv_str(&w, "kind", "input");
    ep_mp_kv_uint(&w, "size", 4);
    ep_mp_kv_uint(&w, "crc", 1);
    send(EP_T_LOAD_BEGIN, seq++, 0, &w);
    send(EP_T_LOAD_END, seq++, 0, NULL);
    collect();
    CHECK(nframes == 2 && get_u(&frames[1], "code") == EP_E_LOAD_CRC);
    reset_host();

    send(EP_T_RESET, seq++, 0, NULL);
    CHECK(mem_port_resets == 1);
}

int main(void) {
    test_crc();
    test_cobs();
    test_msgpack();
    test_frames();
    test_engine();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("firmware core: all checks passed\n");
    return 0;
}
