/* ep_f32.c - binary32 arithmetic on bit patterns (see ep_f32.h for why). */
#include "ep_f32.h"

#define SIGN_BIT 0x80000000u
#define INF_BITS 0x7f800000u

/* index of the highest set bit of m (m != 0), by halving: six steps, no loop per bit */
static int msb64(uint64_t m)
{
    int p = 0, step;
    for (step = 32; step > 0; step >>= 1) {
        if (m >> step) {
            m >>= step;
            p += step;
        }
    }
    return p;
}

/* value = m * 2^e (m's lowest bit may be a sticky bit far below the rounding point), rounded to
 * nearest even into binary32, subnormals included. */
static ep_f32 round_pack(uint32_t sign, uint64_t m, int e)
{
    int p, big_e, drop;
    uint64_t keep;
    uint32_t bits;

    if (m == 0) {
        return sign;
    }
    p = msb64(m);
    big_e = p + e; /* value in [2^big_e, 2^(big_e+1)) */
    drop = big_e >= -126 ? p - 23 : -149 - e;
    if (drop >= 64) {
        return sign; /* below half the smallest subnormal */
    }
    if (drop > 0) {
        uint64_t rem = m & ((UINT64_C(1) << drop) - 1u);
        uint64_t half = UINT64_C(1) << (drop - 1);
        keep = m >> drop;
        if (rem > half || (rem == half && (keep & 1u))) {
            keep++;
        }
    } else {
        keep = m << -drop;
    }
    if (big_e >= -126) {
        if (big_e + 127 >= 255) {
            return sign | INF_BITS;
        }
        /* keep carries the implicit bit (2^23); a carry out of rounding bumps the exponent. */
        bits = ((uint32_t)(big_e + 126) << 23) + (uint32_t)keep;
        if (bits >= INF_BITS) {
            return sign | INF_BITS;
        }
    } else {
        bits = (uint32_t)keep; /* subnormal; rounding up to 2^23 gives the smallest normal */
    }
    return sign | bits;
}

static void unpack(ep_f32 a, uint64_t *m, int *e)
{
    uint32_t ex = (a >> 23) & 0xffu;
    uint32_t frac = a & 0x7fffffu;
    if (ex == 0) {
        *m = frac;
        *e = -149;
    } else {
        *m = frac | 0x800000u;
        *e = (int)ex - 150;
    }
}

ep_f32 ep_f32_from_i32(int32_t v)
{
    uint32_t sign = v < 0 ? SIGN_BIT : 0u;
    uint64_t mag = v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v;
    return round_pack(sign, mag, 0);
}

ep_f32 ep_f32_add_pos(ep_f32 a, ep_f32 b)
{
    uint64_t ma, mb;
    int ea, eb, d;
    unpack(a, &ma, &ea);
    unpack(b, &mb, &eb);
    if (ma == 0) {
        return b;
    }
    if (mb == 0) {
        return a;
    }
    if (ea < eb) {
        uint64_t tm = ma;
        int te = ea;
        ma = mb;
        ea = eb;
        mb = tm;
        eb = te;
    }
    ma <<= 38;
    mb <<= 38;
    d = ea - eb;
    if (d >= 62) {
        mb = 1; /* only a sticky bit is left */
    } else if (d > 0) {
        mb = (mb >> d) | ((mb & ((UINT64_C(1) << d) - 1u)) != 0);
    }
    return round_pack(0, ma + mb, ea - 38);
}

ep_f32 ep_f32_mul(ep_f32 a, ep_f32 b)
{
    uint64_t ma, mb;
    int ea, eb;
    uint32_t sign = (a ^ b) & SIGN_BIT;
    unpack(a & ~SIGN_BIT, &ma, &ea);
    unpack(b & ~SIGN_BIT, &mb, &eb);
    return round_pack(sign, ma * mb, ea + eb);
}

ep_f32 ep_f32_div_pos(ep_f32 a, ep_f32 b)
{
    uint64_t ma, mb, q;
    int ea, eb;
    unpack(a, &ma, &ea);
    unpack(b, &mb, &eb);
    if (ma == 0 || mb == 0) {
        return ma == 0 ? 0u : INF_BITS;
    }
    while (ma < 0x800000u) { /* normalize subnormals: significands in [2^23, 2^24) */
        ma <<= 1;
        ea--;
    }
    while (mb < 0x800000u) {
        mb <<= 1;
        eb--;
    }
    q = (ma << 39) / mb; /* in (2^38, 2^40): far more bits than the 24 kept */
    if ((ma << 39) % mb != 0) {
        q |= 1u;
    }
    return round_pack(0, q, ea - 39 - eb);
}

static int32_t saturate(uint32_t sign, uint64_t mag)
{
    if (sign) {
        return mag >= UINT64_C(0x80000000) ? INT32_MIN : -(int32_t)mag;
    }
    return mag >= UINT64_C(0x7fffffff) ? INT32_MAX : (int32_t)mag;
}

int32_t ep_f32_rint(ep_f32 a)
{
    uint64_t m, keep;
    int e, drop;
    uint32_t sign = a & SIGN_BIT;
    unpack(a & ~SIGN_BIT, &m, &e);
    if (e >= 0) {
        return saturate(sign, e > 31 ? UINT64_C(1) << 32 : m << e);
    }
    drop = -e;
    if (drop > 26) {
        return 0; /* |a| < 2^24 * 2^-27: below one half */
    }
    keep = m >> drop;
    {
        uint64_t rem = m & ((UINT64_C(1) << drop) - 1u);
        uint64_t half = UINT64_C(1) << (drop - 1);
        if (rem > half || (rem == half && (keep & 1u))) {
            keep++;
        }
    }
    return saturate(sign, keep);
}

int32_t ep_f32_round_pos(ep_f32 a)
{
    uint64_t m;
    int e, drop;
    unpack(a & ~SIGN_BIT, &m, &e);
    if (e >= 0) {
        return saturate(0, e > 31 ? UINT64_C(1) << 32 : m << e);
    }
    drop = -e;
    if (drop > 26) {
        return 0;
    }
    return saturate(0, (m + (UINT64_C(1) << (drop - 1))) >> drop);
}
