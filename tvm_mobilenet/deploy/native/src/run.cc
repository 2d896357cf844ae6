// tvm-mobilenet-run: verify and time a native deploy bundle on the machine it is on, through
// the C API alone (no Python), and classify an image given as a PPM, .npy or raw file.
//
//   bin/tvm-mobilenet-run                 # the bundle this binary is in: check, then time
//   bin/tvm-mobilenet-run BUNDLE --runs 100 --threads 4 --image cat.ppm
//
// Exit code 0 when the bundle's self-check passes (max |output - expected| / max |expected|
// <= 1e-4, tvm_mobilenet's fp32 tolerance), 1 when it fails, 2 on bad input.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tvm_mobilenet.h"

namespace {

constexpr double kRelativeTolerance = 1e-4;
// ImageNet's per-channel mean and standard deviation, applied to PPM pixels scaled to [0, 1]
// (the pretrained MobileNetV2's preprocessing, as tvm_mobilenet.classify applies it).
constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string bundle;
  std::string image;
  int runs = 50;
  int warmup = 10;
  int threads = 0;  // 0: TVM's default
};

const char kUsage[] =
    "usage: tvm-mobilenet-run [BUNDLE] [--runs N] [--warmup N] [--threads N] [--image FILE]\n"
    "  BUNDLE   a folder written by `python -m tvm_mobilenet.bundle --native` (default: the\n"
    "           bundle this program is in)\n"
    "  --image  a binary PPM (P6) of the model's input size, a float32 .npy, or a raw file\n"
    "           of float32 NCHW values; prints the top-5 classes\n";

int PositiveInt(const std::string& flag, const char* text, int smallest) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < smallest || value > 1000000) {
    throw BadInput(flag + " takes a whole number >= " + std::to_string(smallest) + ", not '" +
                   text + "'");
  }
  return static_cast<int>(value);
}

std::string OwnBundle() {
  char path[4096];
  const ssize_t size = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (size <= 0) throw BadInput("cannot tell where this program is: give the bundle folder");
  std::string exe(path, static_cast<size_t>(size));
  const std::string bin = exe.substr(0, exe.rfind('/'));
  return bin.substr(0, bin.rfind('/'));
}

Options Parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    const bool takes_value =
        arg == "--runs" || arg == "--warmup" || arg == "--threads" || arg == "--image";
    if (takes_value && i + 1 == argc) throw BadInput(arg + " needs a value");
    if (arg == "--runs") {
      options.runs = PositiveInt(arg, argv[++i], 1);
    } else if (arg == "--warmup") {
      options.warmup = PositiveInt(arg, argv[++i], 0);
    } else if (arg == "--threads") {
      options.threads = PositiveInt(arg, argv[++i], 1);
    } else if (arg == "--image") {
      options.image = argv[++i];
    } else if (arg.rfind("-", 0) == 0 || !options.bundle.empty()) {
      throw BadInput("unexpected argument '" + arg + "'\n" + kUsage);
    } else {
      options.bundle = arg;
    }
  }
  if (options.bundle.empty()) options.bundle = OwnBundle();
  return options;
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw BadInput("cannot read " + path);
  std::ostringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

// The values of a C-ordered little-endian float32 or float64 .npy file, as numpy.save writes
// it (the self-check's expected logits are the float64 reference's).
std::vector<double> ReadNpy(const std::string& path, size_t count) {
  const std::string bytes = ReadFile(path);
  const auto fail = [&](const std::string& why) { return BadInput(path + ": " + why); };
  if (bytes.size() < 12 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw fail("not a .npy file");
  const bool short_header = bytes[6] == 1;
  size_t header_size = 0;
  for (int i = short_header ? 1 : 3; i >= 0; --i) {
    header_size = header_size << 8 | static_cast<unsigned char>(bytes[8 + i]);
  }
  const size_t start = short_header ? 10 : 12;
  if (start + header_size > bytes.size()) throw fail("its header is cut off");
  const std::string header = bytes.substr(start, header_size);
  const bool doubles = header.find("'descr': '<f8'") != std::string::npos;
  if (!doubles && header.find("'descr': '<f4'") == std::string::npos) {
    throw fail("it holds neither float32 nor float64 values");
  }
  if (header.find("'fortran_order': False") == std::string::npos) throw fail("it is Fortran-ordered");
  const size_t data = start + header_size, width = doubles ? sizeof(double) : sizeof(float);
  if (bytes.size() - data != count * width) {
    throw fail("it holds " + std::to_string((bytes.size() - data) / width) +
               " values; the model takes or gives " + std::to_string(count));
  }
  std::vector<double> values(count);
  for (size_t i = 0; i < count; ++i) {
    if (doubles) {
      std::memcpy(&values[i], bytes.data() + data + i * width, width);
    } else {
      float value;
      std::memcpy(&value, bytes.data() + data + i * width, width);
      values[i] = value;
    }
  }
  return values;
}

std::vector<float> AsFloats(const std::vector<double>& values) {
  return std::vector<float>(values.begin(), values.end());
}

// A binary PPM of exactly the model's height and width, normalised with ImageNet's statistics.
std::vector<float> ReadPpm(const std::string& path, const int64_t shape[4]) {
  std::istringstream file(ReadFile(path));
  std::string magic;
  int width = 0, height = 0, maximum = 0;
  file >> magic;
  for (int* field : {&width, &height, &maximum}) {
    while (file >> std::ws && file.peek() == '#') file.ignore(1 << 20, '\n');
    file >> *field;
  }
  if (magic != "P6" || !file || maximum != 255) throw BadInput(path + " is not a binary 8-bit PPM (P6)");
  if (shape[1] != 3 || height != shape[2] || width != shape[3]) {
    throw BadInput(path + " is " + std::to_string(width) + "x" + std::to_string(height) +
                   "; the model takes " + std::to_string(shape[3]) + "x" +
                   std::to_string(shape[2]) + " RGB: resize and crop it first");
  }
  file.get();  // the single whitespace after the maximum
  std::vector<unsigned char> pixels(static_cast<size_t>(3) * width * height);
  file.read(reinterpret_cast<char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
  if (file.gcount() != static_cast<std::streamsize>(pixels.size())) throw BadInput(path + " is cut off");
  const size_t plane = static_cast<size_t>(width) * height;
  std::vector<float> values(3 * plane);
  for (size_t pixel = 0; pixel < plane; ++pixel) {
    for (int channel = 0; channel < 3; ++channel) {
      values[channel * plane + pixel] =
          (pixels[3 * pixel + channel] / 255.0f - kMean[channel]) / kStd[channel];
    }
  }
  return values;
}

std::vector<float> ReadImage(const std::string& path, const int64_t shape[4], size_t count) {
  const auto ends_with = [&](const char* suffix) {
    const size_t n = std::strlen(suffix);
    return path.size() >= n && path.compare(path.size() - n, n, suffix) == 0;
  };
  if (ends_with(".ppm")) return ReadPpm(path, shape);
  if (ends_with(".npy")) return AsFloats(ReadNpy(path, count));
  const std::string bytes = ReadFile(path);
  if (bytes.size() != count * sizeof(float)) {
    throw BadInput(path + " has " + std::to_string(bytes.size()) + " bytes; a raw input is " +
                   std::to_string(count * sizeof(float)) + " (float32 NCHW)");
  }
  std::vector<float> values(count);
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

std::vector<std::string> Labels(const std::string& path) {
  std::vector<std::string> labels;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) labels.push_back(line);
  return labels;
}

// qemu-user shows the host's /proc/cpuinfo: an x86 vendor under an ARM build means emulation.
bool Emulated() {
#if defined(__aarch64__) || defined(__arm__)
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string text((std::istreambuf_iterator<char>(cpuinfo)), std::istreambuf_iterator<char>());
  return text.find("GenuineIntel") != std::string::npos ||
         text.find("AuthenticAMD") != std::string::npos;
#else
  return false;
#endif
}

void Check(tvm_mobilenet_status status) {
  if (status != TVM_MOBILENET_OK) throw BadInput(tvm_mobilenet_last_error());
}

int Run(const Options& options) {
  tvm_mobilenet_model* model = nullptr;
  Check(tvm_mobilenet_open((options.bundle + "/model.so").c_str(), &model));
  std::unique_ptr<tvm_mobilenet_model, void (*)(tvm_mobilenet_model*)> owned(model,
                                                                            tvm_mobilenet_close);
  if (options.threads) Check(tvm_mobilenet_set_threads(model, options.threads));
  int64_t shape[4];
  size_t inputs, outputs;
  Check(tvm_mobilenet_input_shape(model, shape));
  Check(tvm_mobilenet_input_count(model, &inputs));
  Check(tvm_mobilenet_output_count(model, &outputs));
  const std::vector<float> x = AsFloats(ReadNpy(options.bundle + "/input.npy", inputs));
  const std::vector<double> expected = ReadNpy(options.bundle + "/expected.npy", outputs);
  std::vector<float> y(outputs);
  const auto infer = [&](const std::vector<float>& input) {
    Check(tvm_mobilenet_run(model, input.data(), inputs, y.data(), outputs));
  };
  infer(x);
  double error = 0, scale = 0;
  for (size_t i = 0; i < outputs; ++i) {
    error = std::max(error, std::fabs(y[i] - expected[i]));
    scale = std::max(scale, std::fabs(expected[i]));
  }
  const double relative = error / scale;
  const bool passed = relative <= kRelativeTolerance;  // false for NaN
  const auto top = [](const auto& v) { return std::max_element(v.begin(), v.end()) - v.begin(); };
  std::printf("self-check: max abs error %.3e, relative %.3e (tolerance %g), top-1 %td vs "
              "expected %td: %s\n",
              error, relative, kRelativeTolerance, top(y), top(expected), passed ? "PASS" : "FAIL");

  for (int i = 0; i < options.warmup; ++i) infer(x);
  std::vector<double> ms(options.runs);
  for (double& time : ms) {
    const auto start = std::chrono::steady_clock::now();
    infer(x);
    time = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  std::sort(ms.begin(), ms.end());
  std::printf("latency: median %.3f ms, p90 %.3f ms over %d runs after %d warm-up%s\n",
              ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)], options.runs,
              options.warmup, Emulated() ? " [emulated (qemu-user): not device speed]" : "");

  if (!options.image.empty()) {
    infer(ReadImage(options.image, shape, inputs));
    const std::vector<std::string> labels = Labels(options.bundle + "/labels.txt");
    const float peak = *std::max_element(y.begin(), y.end());
    double total = 0;
    for (float logit : y) total += std::exp(static_cast<double>(logit) - peak);
    std::vector<size_t> order(outputs);
    std::iota(order.begin(), order.end(), 0);
    const size_t k = std::min<size_t>(5, outputs);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](size_t a, size_t b) { return y[a] > y[b]; });
    for (size_t rank = 0; rank < k; ++rank) {
      const size_t c = order[rank];
      std::printf("%5.1f%%  %zu %s\n", 100 * std::exp(y[c] - peak) / total, c,
                  c < labels.size() ? labels[c].c_str() : "");
    }
  }
  return passed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(Parse(argc, argv));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 2;
  }
}
