/* The C API's error paths, one line each: "<case> <status> <message>". Built against a
 * native bundle through its pkg-config file; argv[1] is the bundle, argv[2] a library for
 * another architecture (with its description beside it), argv[3] a library with the
 * description `build` writes, which has no output shape. */
#include <stdio.h>
#include <stdlib.h>

#include "tvm_mobilenet.h"

static void report(const char* name, tvm_mobilenet_status status) {
  printf("%s %d %s\n", name, (int)status, status ? tvm_mobilenet_last_error() : "");
}

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  char path[4096];
  tvm_mobilenet_model* model = NULL;

  snprintf(path, sizeof(path), "%s/missing.so", argv[1]);
  report("missing", tvm_mobilenet_open(path, &model));
  report("foreign", tvm_mobilenet_open(argv[2], &model));
  report("plain", tvm_mobilenet_open(argv[3], &model));
  report("null", tvm_mobilenet_open(NULL, &model));

  snprintf(path, sizeof(path), "%s/model.so", argv[1]);
  report("open", tvm_mobilenet_open(path, &model));
  if (model == NULL) return 1;
  size_t inputs = 0, outputs = 0;
  tvm_mobilenet_input_count(model, &inputs);
  tvm_mobilenet_output_count(model, &outputs);
  float* x = calloc(inputs + 1, sizeof(float));
  float* y = calloc(outputs, sizeof(float));
  report("short-input", tvm_mobilenet_run(model, x, inputs - 1, y, outputs));
  report("long-input", tvm_mobilenet_run(model, x, inputs + 1, y, outputs));
  report("threads", tvm_mobilenet_set_threads(model, 0));
  report("run", tvm_mobilenet_run(model, x, inputs, y, outputs));
  report("after-errors", tvm_mobilenet_run(model, x, inputs, y, outputs));
  free(x);
  free(y);
  tvm_mobilenet_close(model);
  tvm_mobilenet_close(NULL);
  return 0;
}
