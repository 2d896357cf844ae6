/*
 * tvm_mobilenet.h: run one MobileNet compiled by tvm_mobilenet, from C or C++, without Python.
 *
 *   tvm_mobilenet_model* model;
 *   if (tvm_mobilenet_open("model.so", &model) != TVM_MOBILENET_OK) {
 *     fprintf(stderr, "%s\n", tvm_mobilenet_last_error());
 *   }
 *   tvm_mobilenet_run(model, image, image_count, logits, logits_count);
 *   tvm_mobilenet_close(model);
 *
 * A model is a library built by `python -m tvm_mobilenet.build` and packed by
 * `python -m tvm_mobilenet.bundle --native`: `model.so` with its description `model.json`
 * beside it. Every call returns a status; none aborts. After a failed call,
 * tvm_mobilenet_last_error() says what went wrong (per thread). A model may be used by one
 * thread at a time.
 */
#ifndef TVM_MOBILENET_H_
#define TVM_MOBILENET_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  TVM_MOBILENET_OK = 0,
  /* A file is missing, unreadable, or not what it should be (wrong architecture, a library
   * that does not match its description, a description that is not one). */
  TVM_MOBILENET_BAD_FILE = 1,
  /* An argument is wrong: a null pointer, a buffer of the wrong size, a thread count < 1. */
  TVM_MOBILENET_BAD_ARGUMENT = 2,
  /* TVM's runtime failed while loading or running the model. */
  TVM_MOBILENET_RUNTIME_ERROR = 3
} tvm_mobilenet_status;

typedef struct tvm_mobilenet_model tvm_mobilenet_model;

/* Open `library` (a .so) and the description beside it (same name, .json). Checks that the
 * library was built for this CPU architecture and, when the description records its SHA-256,
 * that it is the library described, before loading it. */
tvm_mobilenet_status tvm_mobilenet_open(const char* library, tvm_mobilenet_model** model);

/* The input tensor's shape: float32 NCHW, 4 sizes. */
tvm_mobilenet_status tvm_mobilenet_input_shape(const tvm_mobilenet_model* model,
                                               int64_t shape[4]);

/* Number of input and output floats (the output is the logits, e.g. 1 x 1000). */
tvm_mobilenet_status tvm_mobilenet_input_count(const tvm_mobilenet_model* model, size_t* count);
tvm_mobilenet_status tvm_mobilenet_output_count(const tvm_mobilenet_model* model, size_t* count);

/* Threads of TVM's runtime thread pool for this process (every model shares it). */
tvm_mobilenet_status tvm_mobilenet_set_threads(tvm_mobilenet_model* model, int threads);

/* One inference: `input` holds input_count floats (NCHW, normalised as the model expects),
 * `output` receives output_count floats. */
tvm_mobilenet_status tvm_mobilenet_run(tvm_mobilenet_model* model, const float* input,
                                       size_t input_count, float* output,
                                       size_t output_count);

/* What the last failed call on this thread went wrong with ("" if none). */
const char* tvm_mobilenet_last_error(void);

/* Free the model (NULL is allowed). */
void tvm_mobilenet_close(tvm_mobilenet_model* model);

#ifdef __cplusplus
}
#endif

#endif /* TVM_MOBILENET_H_ */
