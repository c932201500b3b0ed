/* The "model" workload: the int8 interpreter of ep_model.h over the uploaded model blob. Its
 * arena comes from the accounted heap, sized exactly to what the model lays out. */
#include "ep_core.h"
#include "ep_model.h"
#include "ep_port.h"

static ep_model *s_m;

static const char *model_layer_op(size_t i) { return s_m ? ep_model_layer_op(s_m, i) : NULL; }

static int model_prepare(const uint8_t *data, size_t len, ep_wl_shape *shape, const char **msg,
                         int *detail) {
    s_m = NULL;
    if (!data || !len) {
        *msg = "model: no model blob uploaded (LOAD kind model)";
        return -1;
    }
    size_t scratch_len = 0;
    uint8_t *scratch = ep_heap_scratch(&scratch_len);
    ep_model *m = NULL;
    int rc = ep_model_init(&m, data, len, scratch, scratch_len);
    if (rc != EP_MODEL_OK) {
        *msg = ep_model_strerror(rc);
        *detail = rc;
        return -1;
    }
    /* The heap was reset before prepare, so the allocation starts where the scratch did and the
     * layout just made stays valid; this only makes the heap account for it. */
    uint8_t *arena = ep_heap_alloc(ep_model_arena_used(m));
    if (arena != scratch) {
        *msg = "model: heap accounting out of step";
        return -1;
    }
    s_m = m;
    shape->in = ep_model_input(m);
    shape->in_bytes = ep_model_input_bytes(m);
    shape->out = ep_model_output(m);
    shape->out_bytes = ep_model_output_bytes(m);
    size_t layers = ep_model_layer_count(m);
    shape->layers = layers <= EP_MAX_LAYERS ? layers : 0;
    shape->layer_op = model_layer_op;
    return 0;
}

static int model_run(uint32_t *layer_cycles) {
    return ep_model_invoke(s_m, ep_port_cycles, layer_cycles) == EP_MODEL_OK ? 0 : -1;
}

const ep_workload ep_wl_model = {"model", model_prepare, model_run};
