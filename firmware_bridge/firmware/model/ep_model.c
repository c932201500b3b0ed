/* ep_model.c - parse a model blob, lay it out in the caller's arena, run it (ep_model.h).
 *
 * The blob comes over the wire, so every field is checked before use: offsets and sizes stay
 * inside the blob, tensor sizes are computed without overflow, activation tensors stay inside
 * the arena, and each op's tensors have the types and shapes its kernel indexes by. After
 * ep_model_init succeeds, ep_model_invoke cannot read or write outside the blob and arena.
 * Format: docs/firmware-protocol.md, "Model blob". No malloc, no libc beyond string.h.
 */
#include "ep_model.h"

#include <string.h>

#include "ep_kernels.h"

#define BLOB_VERSION 1u
#define HEADER_BYTES 48u
#define TENSOR_BYTES 32u
#define OP_BYTES 48u
#define NONE 0xffffu
#define MAX_ELEMS 0x10000000u /* 256 Mi elements: far above any MCU, keeps products small */

enum { T_INT8 = 1, T_INT32 = 2 };
enum { S_ARENA = 0, S_CONST = 1 };

struct ep_model {
    const uint8_t *blob;
    uint8_t *act; /* activation area inside the arena */
    size_t used;
    uint32_t n_ops;
    ep_op *ops;
    int8_t *input, *output;
    uint32_t in_bytes, out_bytes;
};

typedef struct {
    uint8_t type, storage, rank;
    uint32_t dims[4]; /* as stored (rank entries) */
    uint32_t elems, bytes;
    int32_t zero_point;
    uint32_t offset;
} tensor_info;

static uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static int32_t ld_s32(const uint8_t *p)
{
    uint32_t u = ep_ld_u32(p);
    return u <= 0x7fffffffu ? (int32_t)u : -(int32_t)(~u) - 1;
}

static size_t align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* Is [off, off + len) inside [0, cap)? Without overflow. */
static int inside(uint32_t off, uint32_t len, uint32_t cap)
{
    return off <= cap && len <= cap - off;
}

typedef struct {
    const uint8_t *blob;
    uint32_t total, n_tensors, tensors_off, data_off, data_bytes, arena_bytes;
} header_info;

static int read_tensor(const header_info *h, uint32_t i, tensor_info *t)
{
    const uint8_t *p = h->blob + h->tensors_off + (size_t)i * TENSOR_BYTES;
    uint32_t k, elems = 1;
    t->type = p[0];
    t->storage = p[1];
    t->rank = p[2];
    if ((t->type != T_INT8 && t->type != T_INT32) || t->storage > S_CONST || t->rank < 1 ||
        t->rank > 4 || p[3] != 0) {
        return EP_MODEL_E_FORMAT;
    }
    for (k = 0; k < 4; k++) {
        t->dims[k] = ep_ld_u32(p + 4 + 4 * k);
        if (k < t->rank) {
            if (t->dims[k] == 0 || t->dims[k] > MAX_ELEMS / elems) {
                return EP_MODEL_E_FORMAT;
            }
            elems *= t->dims[k];
        } else if (t->dims[k] != 0) {
            return EP_MODEL_E_FORMAT;
        }
    }
    t->elems = elems;
    t->bytes = elems * (t->type == T_INT32 ? 4u : 1u);
    t->zero_point = ld_s32(p + 20);
    t->offset = ep_ld_u32(p + 28);
    if (t->storage == S_CONST) {
        if (!inside(t->offset, t->bytes, h->data_bytes)) {
            return EP_MODEL_E_FORMAT;
        }
    } else {
        if (t->type != T_INT8 || t->zero_point < -128 || t->zero_point > 127 ||
            (t->offset & 3u) || !inside(t->offset, t->bytes, h->arena_bytes)) {
            return EP_MODEL_E_FORMAT;
        }
    }
    return EP_MODEL_OK;
}

/* Right-align dims into NHWC (missing leading dims are 1). */
static void nhwc(const tensor_info *t, uint32_t out[4])
{
    uint32_t k;
    for (k = 0; k < 4; k++) {
        out[k] = 1;
    }
    for (k = 0; k < t->rank; k++) {
        out[4 - t->rank + k] = t->dims[k];
    }
}

static int overlap(const tensor_info *a, const tensor_info *b)
{
    return a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes;
}

static int check_requant_params(const ep_op *op, uint32_t params_len)
{
    uint32_t c;
    if (op->requant == EP_RQ_FP32) {
        if (params_len != 4u * op->channels) {
            return EP_MODEL_E_FORMAT;
        }
        for (c = 0; c < op->channels; c++) {
            uint32_t bits = ep_ld_u32(op->params + 4u * c);
            /* positive, finite, below 256 (the host checks the same) */
            if (bits == 0 || bits >= 0x43800000u) {
                return EP_MODEL_E_FORMAT;
            }
        }
        return EP_MODEL_OK;
    }
    if (op->requant != EP_RQ_GEMMLOWP && op->requant != EP_RQ_RUY) {
        return EP_MODEL_E_UNSUPPORTED;
    }
    if (params_len != 8u * op->channels) {
        return EP_MODEL_E_FORMAT;
    }
    for (c = 0; c < op->channels; c++) {
        int32_t q = ld_s32(op->params + 4u * c);
        int32_t shift = ld_s32(op->params + 4u * (op->channels + c));
        if (q < 0 || shift < -31 || shift > 0) {
            return EP_MODEL_E_UNSUPPORTED;
        }
    }
    return EP_MODEL_OK;
}

/* Decode op i into *op and check it against its tensors. */
static int read_op(const header_info *h, uint32_t i, uint8_t *act, ep_op *op)
{
    const uint8_t *p = h->blob + h->tensors_off + (size_t)h->n_tensors * TENSOR_BYTES +
                       (size_t)i * OP_BYTES;
    uint16_t ix = ld16(p + 4), iw = ld16(p + 6), ib = ld16(p + 8), iy = ld16(p + 10);
    uint32_t params_off = ep_ld_u32(p + 40), params_len = ep_ld_u32(p + 44);
    tensor_info x, y, w, b;
    int rc;

    memset(op, 0, sizeof *op);
    op->code = p[0];
    op->requant = p[1];
    if (p[2] != 0 || p[3] != 0 || ix >= h->n_tensors || iy >= h->n_tensors || ix == iy) {
        return EP_MODEL_E_FORMAT;
    }
    if ((rc = read_tensor(h, ix, &x)) != 0 || (rc = read_tensor(h, iy, &y)) != 0) {
        return rc;
    }
    if (x.storage != S_ARENA || y.storage != S_ARENA || overlap(&x, &y)) {
        return EP_MODEL_E_FORMAT;
    }
    op->x = (const int8_t *)(act + x.offset);
    op->y = (int8_t *)(act + y.offset);
    op->zx = x.zero_point;
    op->zo = y.zero_point;
    op->in_elems = x.elems;
    op->out_elems = y.elems;
    nhwc(&x, op->in);
    nhwc(&y, op->out);
    op->stride_h = ld16(p + 12);
    op->stride_w = ld16(p + 14);
    op->dil_h = ld16(p + 16);
    op->dil_w = ld16(p + 18);
    op->filt_h = ld16(p + 20);
    op->filt_w = ld16(p + 22);
    op->pad_top = ld16(p + 24);
    op->pad_left = ld16(p + 26);
    op->depth_mult = ld16(p + 28);
    op->act_min = ld_s32(p + 32);
    op->act_max = ld_s32(p + 36);
    if (ld16(p + 30) != 0 || op->act_min < -128 || op->act_max > 127 ||
        op->act_min > op->act_max) {
        return EP_MODEL_E_FORMAT;
    }
    if (!inside(params_off, params_len, h->data_bytes) || (params_off & 3u)) {
        return EP_MODEL_E_FORMAT;
    }
    op->params = h->blob + h->data_off + params_off;

    switch (op->code) {
    case EP_OP_RESHAPE:
        return x.elems == y.elems && iw == NONE && ib == NONE ? EP_MODEL_OK : EP_MODEL_E_FORMAT;
    case EP_OP_SOFTMAX:
        if (x.rank != y.rank || memcmp(x.dims, y.dims, sizeof x.dims) != 0 || iw != NONE ||
            ib != NONE) {
            return EP_MODEL_E_FORMAT;
        }
        if (op->requant == EP_SM_TABLE) {
            return params_len == 257u * 4u ? EP_MODEL_OK : EP_MODEL_E_FORMAT;
        }
        if (op->requant == EP_SM_FIXED) {
            /* input multiplier >= 0, left shift 0..30, diff_min <= 0, and every input
             * difference the kernel scales (-255..0, not below diff_min) stays in int32 */
            int32_t mult, shift, diff_min;
            int64_t lowest;
            if (params_len != 12u) {
                return EP_MODEL_E_FORMAT;
            }
            mult = ld_s32(op->params);
            shift = ld_s32(op->params + 4);
            diff_min = ld_s32(op->params + 8);
            lowest = diff_min < -255 ? -255 : diff_min;
            if (mult < 0 || shift < 0 || shift > 30 || diff_min > 0 ||
                lowest * (INT64_C(1) << shift) < INT32_MIN) {
                return EP_MODEL_E_FORMAT;
            }
            return EP_MODEL_OK;
        }
        return EP_MODEL_E_UNSUPPORTED;
    case EP_OP_AVGPOOL:
        if (x.rank != 4 || y.rank != 4 || x.dims[0] != y.dims[0] || x.dims[3] != y.dims[3] ||
            op->stride_h == 0 || op->stride_w == 0 || op->filt_h == 0 || op->filt_w == 0 ||
            iw != NONE || ib != NONE) {
            return EP_MODEL_E_FORMAT;
        }
        return EP_MODEL_OK;
    case EP_OP_FC:
    case EP_OP_CONV:
    case EP_OP_DWCONV:
        break;
    default:
        return EP_MODEL_E_UNSUPPORTED;
    }

    /* weighted ops */
    if (iw >= h->n_tensors || (rc = read_tensor(h, iw, &w)) != 0) {
        return rc ? rc : EP_MODEL_E_FORMAT;
    }
    if (w.storage != S_CONST || w.type != T_INT8) {
        return EP_MODEL_E_FORMAT;
    }
    memcpy(op->wd, w.dims, sizeof op->wd);
    op->w = (const int8_t *)(h->blob + h->data_off + w.offset);
    if (op->code == EP_OP_FC) {
        if (w.rank != 2 || x.elems % w.dims[1] != 0 ||
            (uint64_t)(x.elems / w.dims[1]) * w.dims[0] != y.elems) {
            return EP_MODEL_E_FORMAT;
        }
        op->channels = w.dims[0];
    } else {
        if (x.rank != 4 || y.rank != 4 || w.rank != 4 || x.dims[0] != y.dims[0] ||
            op->stride_h == 0 || op->stride_w == 0 || op->dil_h == 0 || op->dil_w == 0) {
            return EP_MODEL_E_FORMAT;
        }
        if (op->code == EP_OP_CONV) {
            if (w.dims[3] != x.dims[3] || w.dims[0] != y.dims[3]) {
                return EP_MODEL_E_FORMAT;
            }
            op->channels = w.dims[0];
        } else {
            if (w.dims[0] != 1 || w.dims[3] != y.dims[3] || op->depth_mult == 0 ||
                (uint64_t)x.dims[3] * op->depth_mult != y.dims[3]) {
                return EP_MODEL_E_FORMAT;
            }
            op->channels = w.dims[3];
        }
    }
    if (ib != NONE) {
        if (ib >= h->n_tensors || (rc = read_tensor(h, ib, &b)) != 0) {
            return rc ? rc : EP_MODEL_E_FORMAT;
        }
        if (b.storage != S_CONST || b.type != T_INT32 || b.elems != op->channels) {
            return EP_MODEL_E_FORMAT;
        }
        op->bias = h->blob + h->data_off + b.offset;
    }
    return check_requant_params(op, params_len);
}

int ep_model_init(ep_model **out, const uint8_t *blob, size_t blob_len, uint8_t *arena,
                  size_t arena_len)
{
    header_info h;
    uint32_t n_ops, ops_off, in_idx, out_idx, i;
    size_t head, need;
    ep_model *m;
    tensor_info tin, tout;
    int rc;

    if (out == NULL || blob == NULL || arena == NULL) {
        return EP_MODEL_E_FORMAT;
    }
    *out = NULL;
    if (blob_len < HEADER_BYTES || memcmp(blob, "EPMB", 4) != 0) {
        return EP_MODEL_E_FORMAT;
    }
    if (ld16(blob + 4) != BLOB_VERSION) {
        return EP_MODEL_E_VERSION;
    }
    h.blob = blob;
    h.total = ep_ld_u32(blob + 8);
    h.n_tensors = ld16(blob + 12);
    n_ops = ld16(blob + 14);
    in_idx = ld16(blob + 16);
    out_idx = ld16(blob + 18);
    h.tensors_off = ep_ld_u32(blob + 20);
    ops_off = ep_ld_u32(blob + 24);
    h.data_off = ep_ld_u32(blob + 28);
    h.data_bytes = ep_ld_u32(blob + 32);
    h.arena_bytes = ep_ld_u32(blob + 36);
    if (ld16(blob + 6) != HEADER_BYTES || h.total != blob_len || n_ops == 0 ||
        in_idx >= h.n_tensors || out_idx >= h.n_tensors || in_idx == out_idx ||
        h.tensors_off != HEADER_BYTES || ep_ld_u32(blob + 40) > 2u ||
        ep_ld_u32(blob + 44) != 0 ||
        ops_off != h.tensors_off + h.n_tensors * TENSOR_BYTES ||
        h.data_off != ops_off + n_ops * OP_BYTES || !inside(h.data_off, h.data_bytes, h.total) ||
        h.data_off + h.data_bytes != h.total) {
        return EP_MODEL_E_FORMAT;
    }

    /* arena: the model, its decoded ops, then the activations (8-byte aligned). Compared by
     * subtraction: with a 32-bit size_t the sum of a hostile arena_bytes could wrap. */
    head = (size_t)((8u - ((uintptr_t)arena & 7u)) & 7u);
    need = head + align8(sizeof(ep_model)) + align8((size_t)n_ops * sizeof(ep_op));
    if (need > arena_len || (size_t)h.arena_bytes > arena_len - need) {
        return EP_MODEL_E_ARENA;
    }
    need += (size_t)h.arena_bytes;
    m = (ep_model *)(void *)(arena + head);
    m->blob = blob;
    m->ops = (ep_op *)(void *)(arena + head + align8(sizeof(ep_model)));
    m->act = arena + head + align8(sizeof(ep_model)) + align8((size_t)n_ops * sizeof(ep_op));
    m->used = need;
    m->n_ops = n_ops;

    if ((rc = read_tensor(&h, in_idx, &tin)) != 0 || (rc = read_tensor(&h, out_idx, &tout)) != 0) {
        return rc;
    }
    if (tin.storage != S_ARENA || tout.storage != S_ARENA || overlap(&tin, &tout)) {
        return EP_MODEL_E_FORMAT;
    }
    m->input = (int8_t *)(m->act + tin.offset);
    m->output = (int8_t *)(m->act + tout.offset);
    m->in_bytes = tin.bytes;
    m->out_bytes = tout.bytes;
    for (i = 0; i < n_ops; i++) {
        if ((rc = read_op(&h, i, m->act, &m->ops[i])) != 0) {
            return rc;
        }
    }
    memset(m->act, 0, h.arena_bytes);
    *out = m;
    return EP_MODEL_OK;
}

size_t ep_model_arena_used(const ep_model *m)
{
    return m->used;
}

size_t ep_model_input_bytes(const ep_model *m)
{
    return m->in_bytes;
}

size_t ep_model_output_bytes(const ep_model *m)
{
    return m->out_bytes;
}

int8_t *ep_model_input(ep_model *m)
{
    return m->input;
}

const int8_t *ep_model_output(const ep_model *m)
{
    return m->output;
}

size_t ep_model_layer_count(const ep_model *m)
{
    return m->n_ops;
}

const char *ep_model_layer_op(const ep_model *m, size_t i)
{
    static const char *const names[] = {"?", "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D",
                                        "AVERAGE_POOL_2D", "SOFTMAX", "RESHAPE"};
    if (i >= m->n_ops || m->ops[i].code >= sizeof names / sizeof names[0]) {
        return "?";
    }
    return names[m->ops[i].code];
}

static int run_op(const ep_op *op)
{
    switch (op->code) {
    case EP_OP_FC:
        return ep_k_fc(op);
    case EP_OP_CONV:
        return ep_k_conv(op);
    case EP_OP_DWCONV:
        return ep_k_dwconv(op);
    case EP_OP_AVGPOOL:
        return ep_k_avgpool(op);
    case EP_OP_SOFTMAX:
        return op->requant == EP_SM_FIXED ? ep_k_softmax_ref(op) : ep_k_softmax(op);
    case EP_OP_RESHAPE:
        memcpy(op->y, op->x, op->out_elems);
        return EP_MODEL_OK;
    default:
        return EP_MODEL_E_UNSUPPORTED;
    }
}

int ep_model_invoke(ep_model *m, uint64_t (*cycles)(void), uint32_t *layer_cycles)
{
    uint32_t i;
    for (i = 0; i < m->n_ops; i++) {
        uint64_t t0 = 0;
        int rc;
        if (layer_cycles != NULL && cycles != NULL) {
            t0 = cycles();
        }
        rc = run_op(&m->ops[i]);
        if (layer_cycles != NULL && cycles != NULL) {
            uint64_t d = cycles() - t0;
            layer_cycles[i] = d > 0xffffffffu ? 0xffffffffu : (uint32_t)d;
        }
        if (rc != 0) {
            return rc;
        }
    }
    return EP_MODEL_OK;
}

const char *ep_model_strerror(int code)
{
    switch (code) {
    case EP_MODEL_OK:
        return "ok";
    case EP_MODEL_E_FORMAT:
        return "model blob malformed (bad magic, truncated, or a field out of range)";
    case EP_MODEL_E_VERSION:
        return "model blob version not supported by this firmware";
    case EP_MODEL_E_UNSUPPORTED:
        return "model blob uses an op or parameter the kernels do not implement";
    case EP_MODEL_E_ARENA:
        return "arena too small for the model";
    default:
        return "unknown model error";
    }
}
