#include "ep_msgpack.h"

#include <string.h>

void ep_mp_w_init(ep_mp_w *w, uint8_t *p, size_t cap) {
    w->p = p;
    w->cap = cap;
    w->len = 0;
    w->err = 0;
}

static void put(ep_mp_w *w, const uint8_t *b, size_t n) {
    if (w->err || n > w->cap - w->len) {
        w->err = 1;
        return;
    }
    if (n) memcpy(w->p + w->len, b, n);
    w->len += n;
}

static void put_be(ep_mp_w *w, uint8_t tag, uint64_t v, int bytes) {
    uint8_t b[9];
    b[0] = tag;
    for (int k = 0; k < bytes; k++) b[1 + k] = (uint8_t)(v >> (8 * (bytes - 1 - k)));
    put(w, b, (size_t)bytes + 1);
}

void ep_mp_nil(ep_mp_w *w) {
    uint8_t b = 0xC0;
    put(w, &b, 1);
}

void ep_mp_bool(ep_mp_w *w, int v) {
    uint8_t b = v ? 0xC3 : 0xC2;
    put(w, &b, 1);
}

void ep_mp_uint(ep_mp_w *w, uint64_t v) {
    if (v < 0x80) {
        uint8_t b = (uint8_t)v;
        put(w, &b, 1);
    } else if (v <= 0xFF) {
        put_be(w, 0xCC, v, 1);
    } else if (v <= 0xFFFF) {
        put_be(w, 0xCD, v, 2);
    } else if (v <= 0xFFFFFFFFu) {
        put_be(w, 0xCE, v, 4);
    } else {
        put_be(w, 0xCF, v, 8);
    }
}

void ep_mp_int(ep_mp_w *w, int64_t v) {
    if (v >= 0) {
        ep_mp_uint(w, (uint64_t)v);
    } else if (v >= -32) {
        uint8_t b = (uint8_t)(int8_t)v;
        put(w, &b, 1);
    } else if (v >= INT8_MIN) {
        put_be(w, 0xD0, (uint64_t)v, 1);
    } else if (v >= INT16_MIN) {
        put_be(w, 0xD1, (uint64_t)v, 2);
    } else if (v >= INT32_MIN) {
        put_be(w, 0xD2, (uint64_t)v, 4);
    } else {
        put_be(w, 0xD3, (uint64_t)v, 8);
    }
}

void ep_mp_str(ep_mp_w *w, const char *s) {
    size_t n = strlen(s);
    if (n < 32) {
        uint8_t b = (uint8_t)(0xA0 | n);
        put(w, &b, 1);
    } else if (n <= 0xFF) {
        put_be(w, 0xD9, n, 1);
    } else if (n <= 0xFFFF) {
        put_be(w, 0xDA, n, 2);
    } else {
        w->err = 1;
        return;
    }
    put(w, (const uint8_t *)s, n);
}

void ep_mp_bin(ep_mp_w *w, const uint8_t *p, size_t n) {
    if (n <= 0xFF) {
        put_be(w, 0xC4, n, 1);
    } else if (n <= 0xFFFF) {
        put_be(w, 0xC5, n, 2);
    } else if (n <= 0xFFFFFFFFu) {
        put_be(w, 0xC6, n, 4);
    } else {
        w->err = 1;
        return;
    }
    put(w, p, n);
}

static void container(ep_mp_w *w, uint32_t n, uint8_t fix, uint8_t tag16) {
    if (n < 16) {
        uint8_t b = (uint8_t)(fix | n);
        put(w, &b, 1);
    } else if (n <= 0xFFFF) {
        put_be(w, tag16, n, 2);
    } else {
        w->err = 1;
    }
}

void ep_mp_array(ep_mp_w *w, uint32_t n) { container(w, n, 0x90, 0xDC); }
void ep_mp_map(ep_mp_w *w, uint32_t n) { container(w, n, 0x80, 0xDE); }

void ep_mp_kv_uint(ep_mp_w *w, const char *key, uint64_t v) {
    ep_mp_str(w, key);
    ep_mp_uint(w, v);
}

void ep_mp_kv_str(ep_mp_w *w, const char *key, const char *v) {
    ep_mp_str(w, key);
    ep_mp_str(w, v);
}

void ep_mp_r_init(ep_mp_r *r, const uint8_t *p, size_t len) {
    r->p = p;
    r->len = len;
    r->pos = 0;
}

static int take_be(ep_mp_r *r, int bytes, uint64_t *v) {
    if ((size_t)bytes > r->len - r->pos) return -1;
    uint64_t x = 0;
    for (int k = 0; k < bytes; k++) x = (x << 8) | r->p[r->pos++];
    *v = x;
    return 0;
}

static int take_span(ep_mp_r *r, ep_mp_obj *o, uint64_t n) {
    if (n > r->len - r->pos) return -1;
    o->ptr = r->p + r->pos;
    o->len = (uint32_t)n;
    r->pos += (size_t)n;
    return 0;
}

static int64_t sign_extend(uint64_t v, int bytes) {
    if (bytes == 8) return (int64_t)v;
    uint64_t m = 1ull << (8 * bytes - 1);
    return (int64_t)((v ^ m) - m);
}

static int signed_int(ep_mp_obj *o, int64_t s) {
    if (s >= 0) {
        o->kind = EP_MP_UINT;
        o->u = (uint64_t)s;
    } else {
        o->kind = EP_MP_INT;
        o->i = s;
    }
    return 0;
}

int ep_mp_read(ep_mp_r *r, ep_mp_obj *o) {
    uint64_t v = 0;
    memset(o, 0, sizeof *o);
    if (r->pos >= r->len) return -1;
    uint8_t t = r->p[r->pos++];
    if (t < 0x80) {
        o->kind = EP_MP_UINT;
        o->u = t;
        return 0;
    }
    if (t >= 0xE0) {
        o->kind = EP_MP_INT;
        o->i = (int8_t)t;
        return 0;
    }
    if ((t & 0xF0) == 0x80 || (t & 0xF0) == 0x90) {
        o->kind = (t & 0xF0) == 0x80 ? EP_MP_MAP : EP_MP_ARRAY;
        o->len = t & 0x0Fu;
        return 0;
    }
    if ((t & 0xE0) == 0xA0) {
        o->kind = EP_MP_STR;
        return take_span(r, o, t & 0x1Fu);
    }
    switch (t) {
    case 0xC0: o->kind = EP_MP_NIL; return 0;
    case 0xC2:
    case 0xC3: o->kind = EP_MP_BOOL; o->u = t == 0xC3; return 0;
    case 0xC4:
    case 0xC5:
    case 0xC6: {
        int bytes = t == 0xC4 ? 1 : t == 0xC5 ? 2 : 4;
        if (take_be(r, bytes, &v)) return -1;
        o->kind = EP_MP_BIN;
        return take_span(r, o, v);
    }
    case 0xCC:
    case 0xCD:
    case 0xCE:
    case 0xCF: {
        int bytes = 1 << (t - 0xCC);
        if (take_be(r, bytes, &v)) return -1;
        o->kind = EP_MP_UINT;
        o->u = v;
        return 0;
    }
    case 0xD0:
    case 0xD1:
    case 0xD2:
    case 0xD3: {
        int bytes = 1 << (t - 0xD0);
        if (take_be(r, bytes, &v)) return -1;
        return signed_int(o, sign_extend(v, bytes));
    }
    case 0xD9:
    case 0xDA: {
        if (take_be(r, t == 0xD9 ? 1 : 2, &v)) return -1;
        o->kind = EP_MP_STR;
        return take_span(r, o, v);
    }
    case 0xDC:
    case 0xDE: {
        if (take_be(r, 2, &v)) return -1;
        o->kind = t == 0xDE ? EP_MP_MAP : EP_MP_ARRAY;
        o->len = (uint32_t)v;
        return 0;
    }
    default: return -1; /* floats, ext, str32, array32, map32, never-used 0xC1 */
    }
}

int ep_mp_skip(ep_mp_r *r, int depth) {
    ep_mp_obj o;
    if (ep_mp_read(r, &o)) return -1;
    if (o.kind != EP_MP_ARRAY && o.kind != EP_MP_MAP) return 0;
    if (depth <= 0) return -1;
    uint64_t items = o.kind == EP_MP_MAP ? 2ull * o.len : o.len;
    /* Every item takes at least one byte: a count beyond the rest is malformed, and checking it
     * first bounds the loop by the input length. */
    if (items > r->len - r->pos) return -1;
    for (uint64_t k = 0; k < items; k++)
        if (ep_mp_skip(r, depth - 1)) return -1;
    return 0;
}

int ep_mp_check_map(const uint8_t *p, size_t len) {
    ep_mp_r r;
    ep_mp_obj o;
    if (len == 0) return 0;
    ep_mp_r_init(&r, p, len);
    if (ep_mp_read(&r, &o) || o.kind != EP_MP_MAP) return -1;
    if ((uint64_t)o.len * 2 > r.len - r.pos) return -1;
    for (uint32_t k = 0; k < o.len; k++) {
        ep_mp_obj key;
        if (ep_mp_read(&r, &key) || key.kind != EP_MP_STR) return -1;
        if (ep_mp_skip(&r, 4)) return -1;
    }
    return r.pos == r.len ? 0 : -1;
}

int ep_mp_find(const uint8_t *p, size_t len, const char *key, ep_mp_obj *o, ep_mp_r *r) {
    ep_mp_r rr;
    ep_mp_obj m;
    size_t klen = strlen(key);
    if (len == 0) return 0;
    ep_mp_r_init(&rr, p, len);
    if (ep_mp_read(&rr, &m) || m.kind != EP_MP_MAP) return 0;
    for (uint32_t k = 0; k < m.len; k++) {
        ep_mp_obj kobj;
        if (ep_mp_read(&rr, &kobj) || kobj.kind != EP_MP_STR) return 0;
        if (kobj.len == klen && memcmp(kobj.ptr, key, klen) == 0) {
            if (ep_mp_read(&rr, o)) return 0;
            if (r) *r = rr;
            return 1;
        }
        if (ep_mp_skip(&rr, 4)) return 0;
    }
    return 0;
}
