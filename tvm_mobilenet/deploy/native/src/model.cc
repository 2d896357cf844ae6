// The C API of tvm_mobilenet.h over TVM's runtime: a library's Relax VM executable, loaded and
// initialised on the CPU as `relax.VirtualMachine(module, tvm.cpu())` does in Python.
#include <sched.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sha256.h"
#include "tvm_mobilenet.h"

namespace ffi = tvm::ffi;

namespace {

thread_local std::string last_error;

// A failure with the status it is reported as.
struct Failure : std::runtime_error {
  Failure(tvm_mobilenet_status status, const std::string& message)
      : std::runtime_error(message), status(status) {}
  tvm_mobilenet_status status;
};

// TVM's CPU device, and the VM's pooled allocator (relax.VirtualMachine's default).
constexpr DLDevice kCpu{kDLCPU, 0};
constexpr int kPooledAllocator = 2;
// runtime.config_threadpool's mode in which every worker may run on every listed core.
constexpr int kShareAllCores = -3;

#if defined(__x86_64__)
constexpr uint16_t kElfMachine = 62;
constexpr const char* kArchitecture = "x86_64";
#elif defined(__aarch64__)
constexpr uint16_t kElfMachine = 183;
constexpr const char* kArchitecture = "aarch64";
#elif defined(__arm__)
constexpr uint16_t kElfMachine = 40;
constexpr const char* kArchitecture = "32-bit ARM";
#else
#error "tvm_mobilenet's C API is built for x86_64, aarch64 or 32-bit ARM"
#endif

std::string ArchitectureName(uint16_t machine) {
  switch (machine) {
    case 62: return "x86_64";
    case 183: return "aarch64";
    case 40: return "32-bit ARM";
    case 3: return "x86 (32-bit)";
    default: return "ELF machine " + std::to_string(machine);
  }
}

// Refuse what is not a shared library for this CPU, before dlopen sees it.
void CheckElf(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Failure(TVM_MOBILENET_BAD_FILE, "cannot read " + path);
  unsigned char header[20] = {};
  file.read(reinterpret_cast<char*>(header), sizeof(header));
  if (file.gcount() < static_cast<std::streamsize>(sizeof(header)) ||
      std::memcmp(header, "\x7f" "ELF", 4) != 0) {
    throw Failure(TVM_MOBILENET_BAD_FILE, path + " is not a shared library (no ELF header)");
  }
  const uint16_t machine = static_cast<uint16_t>(header[18] | (header[19] << 8));
  if (machine != kElfMachine) {
    throw Failure(TVM_MOBILENET_BAD_FILE, path + " is a library for " +
                                              ArchitectureName(machine) + ", not for this " +
                                              kArchitecture + " CPU");
  }
}

std::string ReadText(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Failure(TVM_MOBILENET_BAD_FILE, "cannot read " + path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// The library's description: the .json beside the .so, as `tvm_mobilenet.bundle` writes it.
struct Description {
  std::vector<int64_t> input_shape;
  std::vector<int64_t> output_shape;
  std::string library_sha256;  // empty: not recorded
};

std::vector<int64_t> Shape(const ffi::Map<ffi::Any, ffi::Any>& spec, const char* field,
                           const std::string& path) {
  auto fail = [&]() -> Failure {
    return Failure(TVM_MOBILENET_BAD_FILE, path + ": " + field + " is missing or not a list of "
                                               "positive sizes");
  };
  auto value = spec.Get(ffi::String(field));
  if (!value.has_value()) {
    throw Failure(TVM_MOBILENET_BAD_FILE, path + " has no " + field + ": give the model.json of "
                                              "a bundle (`tvm-mobilenet bundle --native`)");
  }
  auto sizes = value->try_cast<ffi::Array<ffi::Any>>();
  if (!sizes.has_value() || sizes->empty() || sizes->size() > 8) throw fail();
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (const ffi::Any& size : *sizes) {
    auto number = size.try_cast<int64_t>();
    if (!number.has_value() || *number <= 0 || *number > (int64_t{1} << 28)) throw fail();
    count *= *number;
    if (count > (int64_t{1} << 28)) throw fail();
    shape.push_back(*number);
  }
  return shape;
}

Description ReadDescription(const std::string& path) {
  ffi::String error;
  ffi::json::Value value = ffi::json::Parse(ReadText(path), &error);
  if (!error.empty()) {
    throw Failure(TVM_MOBILENET_BAD_FILE, path + " is not JSON: " + std::string(error));
  }
  auto spec = value.try_cast<ffi::Map<ffi::Any, ffi::Any>>();
  if (!spec.has_value()) throw Failure(TVM_MOBILENET_BAD_FILE, path + " is not a JSON object");
  Description description{Shape(*spec, "input_shape", path), Shape(*spec, "output_shape", path),
                          ""};
  if (description.input_shape.size() != 4) {
    throw Failure(TVM_MOBILENET_BAD_FILE, path + ": input_shape is not NCHW (4 sizes)");
  }
  if (auto digest = spec->Get(ffi::String("library_sha256"))) {
    auto text = digest->try_cast<ffi::String>();
    if (!text.has_value()) {
      throw Failure(TVM_MOBILENET_BAD_FILE, path + ": library_sha256 is not a string");
    }
    description.library_sha256 = std::string(*text);
  }
  return description;
}

std::string DescriptionPath(const std::string& library) {
  const std::string suffix = ".so";
  if (library.size() <= suffix.size() ||
      library.compare(library.size() - suffix.size(), suffix.size(), suffix) != 0) {
    throw Failure(TVM_MOBILENET_BAD_ARGUMENT, library + " is not a .so file");
  }
  return library.substr(0, library.size() - suffix.size()) + ".json";
}

size_t Count(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t size : shape) count *= static_cast<size_t>(size);
  return count;
}

struct CpuAlloc {
  void AllocData(DLTensor* tensor) {
    // 64-byte aligned, as TVM's own CPU allocations are.
    const size_t bytes = (ffi::GetDataSize(*tensor) + 63) / 64 * 64;
    tensor->data = std::aligned_alloc(64, bytes);
    if (tensor->data == nullptr) throw std::bad_alloc();
  }
  void FreeData(DLTensor* tensor) { std::free(tensor->data); }
};

ffi::Function Required(const ffi::Module& module, const char* name, const std::string& path) {
  ffi::Optional<ffi::Function> function = module->GetFunction(ffi::String(name));
  if (!function.has_value()) {
    throw Failure(TVM_MOBILENET_BAD_FILE,
                  path + " has no function " + name + ": it is not a library built by "
                         "tvm_mobilenet.build for a CPU target");
  }
  return *function;
}

// Run `body`, turning every exception into a status and a message.
template <typename Body>
tvm_mobilenet_status Guarded(Body body) {
  try {
    body();
    last_error.clear();
    return TVM_MOBILENET_OK;
  } catch (const Failure& failure) {
    last_error = failure.what();
    return failure.status;
  } catch (const ffi::Error& error) {
    last_error = "TVM runtime: " + error.kind() + ": " + error.message();
  } catch (const std::exception& error) {
    last_error = std::string("TVM runtime: ") + error.what();
  } catch (...) {
    last_error = "TVM runtime: unknown error";
  }
  return TVM_MOBILENET_RUNTIME_ERROR;
}

void Require(bool condition, const char* message) {
  if (!condition) throw Failure(TVM_MOBILENET_BAD_ARGUMENT, message);
}

}  // namespace

struct tvm_mobilenet_model {
  Description description;
  ffi::Module library;  // keeps the code the VM and its tensors point into alive
  ffi::Module vm;
  ffi::Function main;
  ffi::Tensor input;
};

namespace {

tvm_mobilenet_model* Load(const std::string& path, Description description) {
  ffi::Module library = ffi::Module::LoadFromFile(ffi::String(path));
  ffi::Module vm = Required(library, "vm_load_executable", path)().cast<ffi::Module>();
  Required(vm, "vm_initialization", path)(static_cast<int>(kCpu.device_type), kCpu.device_id,
                                          kPooledAllocator);
  ffi::Function main = Required(vm, "main", path);
  const std::vector<int64_t>& shape = description.input_shape;
  ffi::Tensor input = ffi::Tensor::FromNDAlloc(CpuAlloc(), ffi::ShapeView(shape.data(), shape.size()),
                                               DLDataType{kDLFloat, 32, 1}, kCpu);
  return new tvm_mobilenet_model{std::move(description), library, vm, main, input};
}

}  // namespace

extern "C" {

tvm_mobilenet_status tvm_mobilenet_open(const char* library, tvm_mobilenet_model** model) {
  return Guarded([&] {
    Require(library != nullptr && model != nullptr, "library and model must not be NULL");
    *model = nullptr;
    const std::string path(library);
    const std::string description_path = DescriptionPath(path);
    Description description = ReadDescription(description_path);
    CheckElf(path);
    if (!description.library_sha256.empty()) {
      const std::string digest = tvm_mobilenet::Sha256OfFile(path);
      if (digest != description.library_sha256) {
        throw Failure(TVM_MOBILENET_BAD_FILE,
                      path + " is not the library " + description_path + " describes (SHA-256 " +
                          digest + ", described " + description.library_sha256 + ")");
      }
    }
    *model = Load(path, std::move(description));
  });
}

tvm_mobilenet_status tvm_mobilenet_input_shape(const tvm_mobilenet_model* model,
                                               int64_t shape[4]) {
  return Guarded([&] {
    Require(model != nullptr && shape != nullptr, "model and shape must not be NULL");
    std::copy(model->description.input_shape.begin(), model->description.input_shape.end(),
              shape);
  });
}

tvm_mobilenet_status tvm_mobilenet_input_count(const tvm_mobilenet_model* model, size_t* count) {
  return Guarded([&] {
    Require(model != nullptr && count != nullptr, "model and count must not be NULL");
    *count = Count(model->description.input_shape);
  });
}

tvm_mobilenet_status tvm_mobilenet_output_count(const tvm_mobilenet_model* model, size_t* count) {
  return Guarded([&] {
    Require(model != nullptr && count != nullptr, "model and count must not be NULL");
    *count = Count(model->description.output_shape);
  });
}

tvm_mobilenet_status tvm_mobilenet_set_threads(tvm_mobilenet_model* model, int threads) {
  return Guarded([&] {
    Require(model != nullptr, "model must not be NULL");
    Require(threads >= 1, "threads must be at least 1");
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    ffi::Array<ffi::String> cores;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
      for (int core = 0; core < CPU_SETSIZE; ++core) {
        if (CPU_ISSET(core, &allowed)) cores.push_back(ffi::String(std::to_string(core)));
      }
    }
    auto configure = ffi::Function::GetGlobal("runtime.config_threadpool");
    if (!configure.has_value()) {
      throw Failure(TVM_MOBILENET_RUNTIME_ERROR, "TVM's runtime has no thread pool");
    }
    (*configure)(kShareAllCores, threads, cores);
  });
}

tvm_mobilenet_status tvm_mobilenet_run(tvm_mobilenet_model* model, const float* input,
                                       size_t input_count, float* output,
                                       size_t output_count) {
  return Guarded([&] {
    Require(model != nullptr && input != nullptr && output != nullptr,
            "model, input and output must not be NULL");
    const size_t inputs = Count(model->description.input_shape);
    const size_t outputs = Count(model->description.output_shape);
    if (input_count != inputs || output_count != outputs) {
      throw Failure(TVM_MOBILENET_BAD_ARGUMENT,
                    "the model takes " + std::to_string(inputs) + " input floats and gives " +
                        std::to_string(outputs) + " output floats; got buffers of " +
                        std::to_string(input_count) + " and " + std::to_string(output_count));
    }
    std::memcpy(model->input.data_ptr(), input, inputs * sizeof(float));
    ffi::Tensor result = model->main(model->input).cast<ffi::Tensor>();
    const DLDataType dtype = result.dtype();
    if (dtype.code != kDLFloat || dtype.bits != 32 || static_cast<size_t>(result.numel()) != outputs) {
      throw Failure(TVM_MOBILENET_RUNTIME_ERROR,
                    "the library's output is not the " + std::to_string(outputs) +
                        " float32 values its description gives");
    }
    std::memcpy(output, result.data_ptr(), outputs * sizeof(float));
  });
}

const char* tvm_mobilenet_last_error(void) { return last_error.c_str(); }

void tvm_mobilenet_close(tvm_mobilenet_model* model) { delete model; }

}  // extern "C"
