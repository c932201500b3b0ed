/* main.c - the reference firmware's entry point on the Cortex-M ports: bring the board up, then
 * hand over to the core's main loop (which registers the demo workloads itself).
 */
#include "cortex_m.h"
#include "ep_port.h"
#include "ep_workload.h"

int main(void)
{
    ep_port_init();
    ep_main();
    ep_port_exit(0);
    return 0;
}
