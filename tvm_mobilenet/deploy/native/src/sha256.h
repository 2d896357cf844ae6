// SHA-256 (FIPS 180-4) of a file, so a library is checked against its description before it
// is loaded: loading a .so runs its code.
#ifndef TVM_MOBILENET_SHA256_H_
#define TVM_MOBILENET_SHA256_H_

#include <string>

namespace tvm_mobilenet {

// Lower-case hex digest of the file at `path`; throws std::runtime_error if it cannot be read.
std::string Sha256OfFile(const std::string& path);

}  // namespace tvm_mobilenet

#endif  // TVM_MOBILENET_SHA256_H_
