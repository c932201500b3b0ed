/* ep_kernels.c - int8 FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, SOFTMAX.
 *
 * The arithmetic is LiteRT's, operation for operation, so that outputs are bit-identical:
 * accumulators are int32 ((x - zx) * w summed, then the bias), requantized per output channel
 * by the method the host chose for the op (gemmlowp's double rounding, ruy's, or XNNPACK's
 * float32), then offset by the output zero point and clamped to the fused activation's range.
 * Accumulation wraps modulo 2^32 as TFLite's does in practice, without undefined behaviour.
 */
#include "ep_kernels.h"

#include "ep_f32.h"
#include "ep_model.h"

uint32_t ep_ld_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static int32_t ld_i32(const uint8_t *p)
{
    uint32_t u = ep_ld_u32(p);
    return u <= 0x7fffffffu ? (int32_t)u : -(int32_t)(~u) - 1;
}

static int32_t as_i32(uint32_t u)
{
    return u <= 0x7fffffffu ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* floor(v / 2^k) and trunc(v / 2^k) without relying on >> of negative values (which C leaves
 * implementation-defined) and without a 64-bit division (a libgcc call on Cortex-M). */
static int64_t floor_shr(int64_t v, int k)
{
    return v >= 0 ? v >> k : -((-(v + 1)) >> k) - 1;
}

static int64_t trunc_shr(int64_t v, int k)
{
    return v >= 0 ? v >> k : -((-v) >> k);
}

/* gemmlowp SaturatingRoundingDoublingHighMul + RoundingDivideByPOT (TFLite's
 * MultiplyByQuantizedMultiplier with shift <= 0): both steps round ties away from zero.
 * q is in [0, 2^31) and shift in [-31, 0] (checked at init), so nothing saturates. */
static int32_t rq_gemmlowp(int32_t acc, int32_t q, int32_t shift)
{
    int64_t ab = (int64_t)acc * q;
    int64_t nudge = ab >= 0 ? (INT64_C(1) << 30) : 1 - (INT64_C(1) << 30);
    int64_t high = trunc_shr(ab + nudge, 31); /* C++'s int64 division by 2^31 */
    int exp = -shift;
    int64_t mask = (INT64_C(1) << exp) - 1;
    int64_t rem = high - floor_shr(high, exp) * (INT64_C(1) << exp); /* high & mask */
    int64_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    return (int32_t)(floor_shr(high, exp) + (rem > threshold ? 1 : 0));
}

/* ruy's requantization (LiteRT's FULLY_CONNECTED and CONV_2D): the same two steps, with ties
 * towards +inf in both. */
static int32_t rq_ruy(int32_t acc, int32_t q, int32_t shift)
{
    int64_t high = floor_shr((int64_t)acc * q + (INT64_C(1) << 30), 31);
    int exp = -shift;
    if (exp > 0) {
        high = floor_shr(high + (INT64_C(1) << (exp - 1)), exp);
    }
    return (int32_t)high;
}

/* Output value of channel c for accumulator acc, before the zero point. */
static int32_t requant(const ep_op *op, int32_t acc, uint32_t c)
{
    if (op->requant == EP_RQ_FP32) {
        ep_f32 scale = ep_ld_u32(op->params + 4u * c);
        return ep_f32_rint(ep_f32_mul(ep_f32_from_i32(acc), scale));
    }
    {
        int32_t q = ld_i32(op->params + 4u * c);
        int32_t shift = ld_i32(op->params + 4u * (op->channels + c));
        return op->requant == EP_RQ_RUY ? rq_ruy(acc, q, shift) : rq_gemmlowp(acc, q, shift);
    }
}

static int8_t finish(const ep_op *op, int32_t acc, uint32_t c)
{
    int32_t v = requant(op, acc, c);
    /* clamp first (any value beyond +-1024 ends at the int8 limits anyway), so adding the
     * zero point cannot overflow */
    if (v > 1024) {
        v = 1024;
    } else if (v < -1024) {
        v = -1024;
    }
    v += op->zo;
    if (v < op->act_min) {
        v = op->act_min;
    }
    if (v > op->act_max) {
        v = op->act_max;
    }
    return (int8_t)v;
}

static int32_t bias_of(const ep_op *op, uint32_t c)
{
    return op->bias ? ld_i32(op->bias + 4u * c) : 0;
}

/* sum of (x[i] - zx) * w[i]: the MAC loop, on its own so that it keeps its registers */
static uint32_t dot_s8(const int8_t *x, const int8_t *w, uint32_t n, int32_t zx)
{
    uint32_t acc = 0, i;
    for (i = 0; i < n; i++) {
        acc += (uint32_t)(((int32_t)x[i] - zx) * (int32_t)w[i]);
    }
    return acc;
}

/* the same with strides (depthwise: one channel of a window) */
static uint32_t dot_s8_strided(const int8_t *x, size_t xs, const int8_t *w, size_t ws, uint32_t n,
                               int32_t zx)
{
    uint32_t acc = 0, i;
    for (i = 0; i < n; i++, x += xs, w += ws) {
        acc += (uint32_t)(((int32_t)*x - zx) * (int32_t)*w);
    }
    return acc;
}

int ep_k_fc(const ep_op *op)
{
    uint32_t units = op->wd[0], depth = op->wd[1];
    uint32_t batches = op->in_elems / depth;
    uint32_t b, n;
    for (b = 0; b < batches; b++) {
        const int8_t *x = op->x + (size_t)b * depth;
        int8_t *y = op->y + (size_t)b * units;
        for (n = 0; n < units; n++) {
            uint32_t acc = (uint32_t)bias_of(op, n);
            acc += dot_s8(x, op->w + (size_t)n * depth, depth, op->zx);
            y[n] = finish(op, as_i32(acc), n);
        }
    }
    return EP_MODEL_OK;
}

/* The taps t in [*lo, *hi) of a k-tap window starting at origin (stride dil) that fall inside
 * [0, size). Computed once per output row or column, so the MAC loops have no bounds tests. */
static void tap_range(int64_t origin, uint32_t k, uint32_t dil, uint32_t size, uint32_t *lo,
                      uint32_t *hi)
{
    int64_t first = 0, end = k;
    if (origin < 0) {
        first = (-origin + dil - 1) / dil;
    }
    if (origin + (end - 1) * (int64_t)dil >= (int64_t)size) {
        end = origin >= (int64_t)size ? 0 : ((int64_t)size - 1 - origin) / dil + 1;
    }
    if (first > end) {
        first = end;
    }
    *lo = (uint32_t)first;
    *hi = (uint32_t)end;
}

/* Where one output position's window starts and how it steps, inside the input. */
typedef struct {
    const int8_t *x;    /* first valid tap */
    uint32_t ky0, kx0;  /* its tap indices */
    uint32_t nky, nkx;  /* valid taps down and across */
    size_t row, col;    /* input steps between taps (elements) */
} window;

static void window_at(const ep_op *op, uint32_t b, uint32_t oy, uint32_t ox, window *win)
{
    const uint32_t H = op->in[1], W = op->in[2], C = op->in[3];
    int64_t y0 = (int64_t)oy * op->stride_h - op->pad_top;
    int64_t x0 = (int64_t)ox * op->stride_w - op->pad_left;
    uint32_t ky1, kx1;
    tap_range(y0, op->wd[1], op->dil_h, H, &win->ky0, &ky1);
    tap_range(x0, op->wd[2], op->dil_w, W, &win->kx0, &kx1);
    win->nky = ky1 - win->ky0;
    win->nkx = kx1 - win->kx0;
    win->row = (size_t)op->dil_h * W * C;
    win->col = (size_t)op->dil_w * C;
    if (win->nky == 0 || win->nkx == 0) {
        win->x = op->x; /* no taps: never read */
        return;
    }
    win->x = op->x + (((size_t)b * H + (size_t)(y0 + (int64_t)win->ky0 * op->dil_h)) * W +
                      (size_t)(x0 + (int64_t)win->kx0 * op->dil_w)) * C;
}

int ep_k_conv(const ep_op *op)
{
    const uint32_t C = op->in[3], OH = op->out[1], OW = op->out[2], OC = op->out[3];
    const size_t w_row = (size_t)op->wd[2] * C, w_oc = (size_t)op->wd[1] * w_row;
    const int32_t zx = op->zx;
    uint32_t b, oy, ox, oc, r, c;
    for (b = 0; b < op->in[0]; b++) {
        for (oy = 0; oy < OH; oy++) {
            for (ox = 0; ox < OW; ox++) {
                int8_t *y = op->y + (((size_t)b * OH + oy) * OW + ox) * OC;
                window win;
                const int8_t *w0;
                window_at(op, b, oy, ox, &win);
                w0 = op->w + win.ky0 * w_row + (size_t)win.kx0 * C;
                for (oc = 0; oc < OC; oc++, w0 += w_oc) {
                    uint32_t acc = 0;
                    for (r = 0; r < win.nky; r++) {
                        const int8_t *xr = win.x + r * win.row, *wr = w0 + r * w_row;
                        if (win.col == C) { /* taps adjacent in memory: one run */
                            acc += dot_s8(xr, wr, win.nkx * C, zx);
                            continue;
                        }
                        for (c = 0; c < win.nkx; c++) {
                            acc += dot_s8(xr + c * win.col, wr + (size_t)c * C, C, zx);
                        }
                    }
                    acc += (uint32_t)bias_of(op, oc);
                    y[oc] = finish(op, as_i32(acc), oc);
                }
            }
        }
    }
    return EP_MODEL_OK;
}

int ep_k_dwconv(const ep_op *op)
{
    const uint32_t C = op->in[3], OH = op->out[1], OW = op->out[2], OC = op->out[3];
    const uint32_t M = op->depth_mult;
    const size_t w_row = (size_t)op->wd[2] * OC;
    const int32_t zx = op->zx;
    uint32_t b, oy, ox, ic, m, r;
    for (b = 0; b < op->in[0]; b++) {
        for (oy = 0; oy < OH; oy++) {
            for (ox = 0; ox < OW; ox++) {
                int8_t *y = op->y + (((size_t)b * OH + oy) * OW + ox) * OC;
                window win;
                const int8_t *w0;
                window_at(op, b, oy, ox, &win);
                w0 = op->w + win.ky0 * w_row + (size_t)win.kx0 * OC;
                for (ic = 0; ic < C; ic++) {
                    for (m = 0; m < M; m++) {
                        uint32_t oc = ic * M + m;
                        uint32_t acc = 0;
                        for (r = 0; r < win.nky; r++) {
                            acc += dot_s8_strided(win.x + r * win.row + ic, win.col,
                                                  w0 + r * w_row + oc, OC, win.nkx, zx);
                        }
                        acc += (uint32_t)bias_of(op, oc);
                        y[oc] = finish(op, as_i32(acc), oc);
                    }
                }
            }
        }
    }
    return EP_MODEL_OK;
}

int ep_k_avgpool(const ep_op *op)
{
    uint32_t H = op->in[1], W = op->in[2], C = op->in[3];
    uint32_t OH = op->out[1], OW = op->out[2];
    uint32_t b, oy, ox, c;
    for (b = 0; b < op->in[0]; b++) {
        for (oy = 0; oy < OH; oy++) {
            for (ox = 0; ox < OW; ox++) {
                int64_t y0 = (int64_t)oy * op->stride_h - op->pad_top;
                int64_t x0 = (int64_t)ox * op->stride_w - op->pad_left;
                int64_t y1 = y0 + op->filt_h, x1 = x0 + op->filt_w, iy, ix;
                if (y0 < 0) {
                    y0 = 0;
                }
                if (x0 < 0) {
                    x0 = 0;
                }
                if (y1 > (int64_t)H) {
                    y1 = H;
                }
                if (x1 > (int64_t)W) {
                    x1 = W;
                }
                if (y1 <= y0 || x1 <= x0) {
                    return EP_MODEL_E_FORMAT; /* a window with no input (TFLite fails too) */
                }
                for (c = 0; c < C; c++) {
                    int64_t sum = 0, count = (y1 - y0) * (x1 - x0), avg;
                    for (iy = y0; iy < y1; iy++) {
                        for (ix = x0; ix < x1; ix++) {
                            sum += op->x[(((size_t)b * H + (size_t)iy) * W + (size_t)ix) * C + c];
                        }
                    }
                    /* TFLite: round to the closest integer, ties away from zero */
                    avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    if (avg < op->act_min) {
                        avg = op->act_min;
                    }
                    if (avg > op->act_max) {
                        avg = op->act_max;
                    }
                    op->y[(((size_t)b * OH + oy) * OW + ox) * C + c] = (int8_t)avg;
                }
            }
        }
    }
    return EP_MODEL_OK;
}

/* LiteRT's optimized int8 SOFTMAX: float32 exp table indexed by (max - x), summed in order,
 * scaled by 1 / (sum * output_scale), rounded half away from zero. */
int ep_k_softmax(const ep_op *op)
{
    uint32_t depth = op->in[3];
    uint32_t rows = op->in_elems / depth;
    ep_f32 out_scale = ep_ld_u32(op->params + 4u * 256u);
    uint32_t r, j;
    for (r = 0; r < rows; r++) {
        const int8_t *x = op->x + (size_t)r * depth;
        int8_t *y = op->y + (size_t)r * depth;
        int32_t mx = -128;
        ep_f32 sum = 0u, inv;
        for (j = 0; j < depth; j++) {
            if (x[j] > mx) {
                mx = x[j];
            }
        }
        for (j = 0; j < depth; j++) {
            sum = ep_f32_add_pos(sum, ep_ld_u32(op->params + 4u * (uint32_t)(255 - (mx - x[j]))));
        }
        inv = ep_f32_div_pos(EP_F32_ONE, ep_f32_mul(sum, out_scale));
        for (j = 0; j < depth; j++) {
            ep_f32 p = ep_f32_mul(ep_ld_u32(op->params + 4u * (uint32_t)(255 - (mx - x[j]))), inv);
            int32_t v = ep_f32_round_pos(p);
            v = v > 255 ? 255 : v;
            v += op->zo;
            y[j] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
        }
    }
    return EP_MODEL_OK;
}

/* ---------------------------------------------------------------------------------------------
 * TFLite's reference int8 SOFTMAX (what TFLM and LiteRT's reference kernels run): gemmlowp
 * fixed point. Raw int32 values; "Qn" below means n integer bits (31 - n fractional bits). */

static int32_t srdhm(int32_t a, int32_t b) /* SaturatingRoundingDoublingHighMul */
{
    int64_t ab;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * b;
    return (int32_t)trunc_shr(ab + (ab >= 0 ? (INT64_C(1) << 30) : 1 - (INT64_C(1) << 30)), 31);
}

static int32_t rdbpot(int32_t x, int exp) /* RoundingDivideByPOT */
{
    int64_t v = x;
    int64_t mask = (INT64_C(1) << exp) - 1;
    int64_t rem = v - floor_shr(v, exp) * (INT64_C(1) << exp);
    int64_t threshold = (mask >> 1) + (v < 0 ? 1 : 0);
    return (int32_t)(floor_shr(v, exp) + (rem > threshold ? 1 : 0));
}

static int32_t sat_shl(int32_t x, int exp) /* SaturatingRoundingMultiplyByPOT, exp > 0 */
{
    int32_t threshold = (int32_t)((INT64_C(1) << (31 - exp)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((int64_t)x * (INT64_C(1) << exp));
}

static int32_t wrap_add(int32_t a, int32_t b)
{
    return as_i32((uint32_t)a + (uint32_t)b);
}

/* exp(a) for a in [-1/4, 0), Q0 in and out */
static int32_t exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    int32_t x = wrap_add(a, 1 << 28);
    int32_t x2 = srdhm(x, x), x3 = srdhm(x2, x), x4 = srdhm(x2, x2);
    int32_t x4_over_4 = rdbpot(x4, 2);
    int32_t poly = rdbpot(wrap_add(srdhm(wrap_add(x4_over_4, x3), one_third), x2), 1);
    return wrap_add(constant_term, srdhm(constant_term, wrap_add(x, poly)));
}

/* gemmlowp exp_on_negative_values for a Q5 input, Q0 result */
static int32_t exp_neg_q5(int32_t a)
{
    static const int32_t mult[7] = {1672461947, 1302514674, 790015084, 290630308,
                                    39332535,   720401,     242};
    const int32_t quarter = 1 << 24;
    int32_t a_mod = (a & (quarter - 1)) - quarter;
    int32_t result = exp_quarter(sat_shl(a_mod, 5));
    int32_t remainder = as_i32((uint32_t)a_mod - (uint32_t)a);
    int k;
    for (k = 0; k < 7; k++) { /* exponents -2..4: bit 26 + e of the remainder */
        if (remainder & (int32_t)(INT64_C(1) << (24 + k))) {
            result = srdhm(result, mult[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1), Q0 in and out (Newton-Raphson) */
static int32_t one_over_one_plus_x(int32_t a)
{
    int64_t sum = (int64_t)a + INT32_MAX;
    int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* RoundingHalfSum */
    int32_t x = wrap_add(1515870810, srdhm(half_den, -1010580540)); /* Q2 */
    int i;
    for (i = 0; i < 3; i++) {
        int32_t one_minus = as_i32((uint32_t)(1 << 29) - (uint32_t)srdhm(half_den, x));
        x = wrap_add(x, sat_shl(srdhm(x, one_minus), 2));
    }
    return sat_shl(x, 1);
}

static int clz32(uint32_t x)
{
    int n = 0;
    while (n < 32 && !(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

int ep_k_softmax_ref(const ep_op *op)
{
    uint32_t depth = op->in[3];
    uint32_t rows = op->in_elems / depth;
    int32_t in_mult = ld_i32(op->params), left_shift = ld_i32(op->params + 4);
    int32_t diff_min = ld_i32(op->params + 8);
    uint32_t r, j;
    for (r = 0; r < rows; r++) {
        const int8_t *x = op->x + (size_t)r * depth;
        int8_t *y = op->y + (size_t)r * depth;
        int32_t mx = -128, sum = 0, scale;
        int headroom, bits_over_unit;
        for (j = 0; j < depth; j++) {
            if (x[j] > mx) {
                mx = x[j];
            }
        }
        for (j = 0; j < depth; j++) {
            int32_t diff = x[j] - mx;
            if (diff >= diff_min) {
                int32_t e = exp_neg_q5(srdhm(diff * (1 << left_shift), in_mult));
                sum = wrap_add(sum, rdbpot(e, 12)); /* Rescale Q0 -> Q12 */
            }
        }
        headroom = clz32((uint32_t)sum);
        bits_over_unit = 12 - headroom;
        scale = one_over_one_plus_x(
            as_i32(((uint32_t)sum << headroom) - 0x80000000u));
        for (j = 0; j < depth; j++) {
            int32_t diff = x[j] - mx, v = -128;
            if (diff >= diff_min) {
                int32_t e = exp_neg_q5(srdhm(diff * (1 << left_shift), in_mult));
                v = rdbpot(srdhm(scale, e), bits_over_unit + 23) - 128;
                v = v > 127 ? 127 : (v < -128 ? -128 : v);
            }
            y[j] = (int8_t)v;
        }
    }
    return EP_MODEL_OK;
}

