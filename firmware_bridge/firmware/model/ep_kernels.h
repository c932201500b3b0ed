/* ep_kernels.h - the int8 kernels behind ep_model.h, one decoded op each.
 *
 * ep_model.c checks every field of the blob before it fills an ep_op, so the kernels trust
 * their op: every index they compute stays inside the buffers the op points to.
 */
#ifndef EP_KERNELS_H
#define EP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

enum { EP_OP_FC = 1, EP_OP_CONV = 2, EP_OP_DWCONV = 3, EP_OP_AVGPOOL = 4, EP_OP_SOFTMAX = 5,
       EP_OP_RESHAPE = 6 };

/* How int32 accumulators become int8 (the blob's per-op choice, made on the host). For
 * SOFTMAX the same field picks the algorithm: EP_SM_TABLE (LiteRT's optimized kernel) or
 * EP_SM_FIXED (TFLite's reference kernel, which TFLM runs). */
enum { EP_RQ_GEMMLOWP = 0, EP_RQ_RUY = 1, EP_RQ_FP32 = 2 };
enum { EP_SM_TABLE = 0, EP_SM_FIXED = 1 };

typedef struct {
    uint8_t code;
    uint8_t requant;
    const int8_t *x;
    int8_t *y;
    const int8_t *w;
    const uint8_t *bias;   /* little-endian int32 per output channel, or NULL */
    const uint8_t *params; /* per-op data: multipliers and shifts, float scales, a table */
    uint32_t in[4];        /* input dims, NHWC (rank < 4: leading dims are 1) */
    uint32_t out[4];
    uint32_t wd[4];        /* weights dims as stored: FC [units, depth], CONV [oc, kh, kw, ic],
                              DEPTHWISE [1, kh, kw, oc] */
    uint32_t channels;     /* output channels (entries of the per-channel params) */
    uint32_t in_elems, out_elems;
    int32_t zx, zo;        /* input and output zero points */
    uint32_t stride_h, stride_w, dil_h, dil_w, filt_h, filt_w, pad_top, pad_left, depth_mult;
    int32_t act_min, act_max;
} ep_op;

/* Each returns 0, or a negative EP_MODEL_E_* code. */
int ep_k_fc(const ep_op *op);
int ep_k_conv(const ep_op *op);
int ep_k_dwconv(const ep_op *op);
int ep_k_avgpool(const ep_op *op);
int ep_k_softmax(const ep_op *op);
int ep_k_softmax_ref(const ep_op *op);

uint32_t ep_ld_u32(const uint8_t *p);

#endif
