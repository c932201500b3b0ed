/* test_f32.c - ep_f32 against the host's IEEE float32, driven by tests/test_firmware_kernels.py.
 *
 * Reads lines "OP A B" (OP one of add mul div from rint round; A and B as unsigned bit
 * patterns, or a signed integer for "from") from stdin and prints one result per line: the
 * bit pattern, or the integer for rint and round.
 */
#include <stdio.h>
#include <string.h>

#include "ep_f32.h"

int main(void)
{
    char op[8];
    unsigned long a, b;
    long v;
    while (scanf("%7s", op) == 1) {
        if (strcmp(op, "from") == 0) {
            if (scanf("%ld %lu", &v, &b) != 2) {
                return 2;
            }
            printf("%lu\n", (unsigned long)ep_f32_from_i32((int32_t)v));
            continue;
        }
        if (scanf("%lu %lu", &a, &b) != 2) {
            return 2;
        }
        if (strcmp(op, "add") == 0) {
            printf("%lu\n", (unsigned long)ep_f32_add_pos((ep_f32)a, (ep_f32)b));
        } else if (strcmp(op, "mul") == 0) {
            printf("%lu\n", (unsigned long)ep_f32_mul((ep_f32)a, (ep_f32)b));
        } else if (strcmp(op, "div") == 0) {
            printf("%lu\n", (unsigned long)ep_f32_div_pos((ep_f32)a, (ep_f32)b));
        } else if (strcmp(op, "rint") == 0) {
            printf("%ld\n", (long)ep_f32_rint((ep_f32)a));
        } else if (strcmp(op, "round") == 0) {
            printf("%ld\n", (long)ep_f32_round_pos((ep_f32)a));
        } else {
            return 2;
        }
    }
    return 0;
}
