/* ep_model.h - the demo workload's model interpreter: int8 kernels that execute a model blob.
 *
 * The blob is made on the host from a .tflite file by edgeprof.bridge.model_blob (format in
 * docs/firmware-protocol.md, "Model blob") and sent with LOAD. The kernels' outputs equal
 * TFLite's (LiteRT's builtin int8 kernels) bit for bit on the same inputs.
 */
#ifndef EP_MODEL_H
#define EP_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct ep_model ep_model; /* opaque; lives inside the caller's arena */

enum {
    EP_MODEL_OK = 0,
    EP_MODEL_E_FORMAT = -1,    /* blob malformed: bad magic, truncated, offsets out of range */
    EP_MODEL_E_VERSION = -2,   /* blob version this firmware does not know */
    EP_MODEL_E_UNSUPPORTED = -3, /* an op or parameter the kernels do not implement */
    EP_MODEL_E_ARENA = -4,     /* arena too small for the tensors */
};

/* Parse the blob (kept by reference: it must outlive the model) and lay out the tensors in the
 * arena. On success *out points into the arena. */
int ep_model_init(ep_model **out, const uint8_t *blob, size_t blob_len, uint8_t *arena,
                  size_t arena_len);

/* Bytes of arena the model needs (valid after a successful init). */
size_t ep_model_arena_used(const ep_model *m);

size_t ep_model_input_bytes(const ep_model *m);
size_t ep_model_output_bytes(const ep_model *m);
int8_t *ep_model_input(ep_model *m);
const int8_t *ep_model_output(const ep_model *m);

size_t ep_model_layer_count(const ep_model *m);
/* Name of layer i's op ("FULLY_CONNECTED", "CONV_2D", ...). */
const char *ep_model_layer_op(const ep_model *m, size_t i);

/* Run one inference on the input buffer. When layer_cycles is not NULL, cycles() is read
 * around each layer and layer_cycles[i] gets its count (ep_model_layer_count entries). */
int ep_model_invoke(ep_model *m, uint64_t (*cycles)(void), uint32_t *layer_cycles);

/* One line for an error code. */
const char *ep_model_strerror(int code);

#endif
