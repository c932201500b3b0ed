/* ep_msgpack.h - the msgpack subset of protocol v1: an encoder into a fixed buffer and a
 * bounds-checked pull decoder (nil, bool, ints, str, bin, array, map; no floats, no ext). */
#ifndef EP_MSGPACK_H
#define EP_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *p;
    size_t cap, len;
    int err; /* set once anything did not fit; the buffer is then unusable */
} ep_mp_w;

void ep_mp_w_init(ep_mp_w *w, uint8_t *p, size_t cap);
void ep_mp_nil(ep_mp_w *w);
void ep_mp_bool(ep_mp_w *w, int v);
void ep_mp_uint(ep_mp_w *w, uint64_t v);
void ep_mp_int(ep_mp_w *w, int64_t v);
void ep_mp_str(ep_mp_w *w, const char *s);
void ep_mp_bin(ep_mp_w *w, const uint8_t *p, size_t n);
void ep_mp_array(ep_mp_w *w, uint32_t n);
void ep_mp_map(ep_mp_w *w, uint32_t n);
/* Shorthand for a str key followed by a uint value. */
void ep_mp_kv_uint(ep_mp_w *w, const char *key, uint64_t v);
void ep_mp_kv_str(ep_mp_w *w, const char *key, const char *v);

typedef enum {
    EP_MP_NIL,
    EP_MP_BOOL,
    EP_MP_UINT, /* non-negative integer: u */
    EP_MP_INT,  /* negative integer: i */
    EP_MP_STR,  /* ptr, len */
    EP_MP_BIN,  /* ptr, len */
    EP_MP_ARRAY, /* len = element count; elements follow */
    EP_MP_MAP,   /* len = pair count; pairs follow */
} ep_mp_kind;

typedef struct {
    ep_mp_kind kind;
    uint64_t u;
    int64_t i;
    const uint8_t *ptr;
    uint32_t len;
} ep_mp_obj;

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} ep_mp_r;

void ep_mp_r_init(ep_mp_r *r, const uint8_t *p, size_t len);
/* Read one item (a container yields only its header). 0, or -1 on malformed or unsupported. */
int ep_mp_read(ep_mp_r *r, ep_mp_obj *o);
/* Skip one whole value, containers included, nesting at most depth levels. 0 or -1. */
int ep_mp_skip(ep_mp_r *r, int depth);
/* 0 when p[0..len) is exactly one well-formed map (or empty), else -1. */
int ep_mp_check_map(const uint8_t *p, size_t len);
/* Find key in the top-level map p[0..len) (checked with ep_mp_check_map first). 1 and the
 * value's header in *o (and *r positioned after it, for arrays) when found, 0 when absent. */
int ep_mp_find(const uint8_t *p, size_t len, const char *key, ep_mp_obj *o, ep_mp_r *r);

#endif
