/* sbrk.c - newlib's heap, bounded by the linker script's __heap_start/__heap_end
 * (nosys.specs' _sbrk has no upper bound and would grow into the stack or past RAM).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

extern uint8_t __heap_start[], __heap_end[];

static uint8_t *brk_now = __heap_start;

void *_sbrk(ptrdiff_t incr);

void *_sbrk(ptrdiff_t incr)
{
    uint8_t *prev = brk_now;
    if ((incr > 0 && (size_t)incr > (size_t)(__heap_end - brk_now)) ||
        (incr < 0 && (size_t)-incr > (size_t)(brk_now - __heap_start))) {
        errno = ENOMEM;
        return (void *)-1;
    }
    brk_now += incr;
    return prev;
}
