/* ep_f32.h - the few IEEE-754 binary32 operations LiteRT's int8 kernels use, in integers.
 *
 * XNNPACK requantizes with float32 and LiteRT's optimized SOFTMAX sums float32 table entries.
 * To give bit-identical results on any MCU (with or without an FPU, whatever the compiler's
 * float flags) these are computed on the bit patterns with round-to-nearest-even, exactly as
 * an IEEE FPU would. Only finite values occur (the host compiler checks the scales).
 */
#ifndef EP_F32_H
#define EP_F32_H

#include <stdint.h>

typedef uint32_t ep_f32; /* the bit pattern of a binary32 value */

#define EP_F32_ONE 0x3f800000u

ep_f32 ep_f32_from_i32(int32_t v);
/* a + b for non-negative a and b. */
ep_f32 ep_f32_add_pos(ep_f32 a, ep_f32 b);
ep_f32 ep_f32_mul(ep_f32 a, ep_f32 b);
/* a / b for positive a and b. */
ep_f32 ep_f32_div_pos(ep_f32 a, ep_f32 b);
/* Nearest integer, ties to even (lrintf), saturated to [-2^31, 2^31 - 1]. */
int32_t ep_f32_rint(ep_f32 a);
/* Nearest integer, ties away from zero (roundf), for non-negative a, saturated. */
int32_t ep_f32_round_pos(ep_f32 a);

#endif
