// The driver of a fuzz target where libFuzzer is not linked (the GCC release build): runs the
// target once on each file named, and on each file of each directory named, so that the seed
// corpus and every input a fuzzing run once saved stay regression tests. libFuzzer's options
// ("-max_total_time=10", ...) are accepted and ignored, so one ctest command serves both builds.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void RunFile(const std::filesystem::path& path, int* runs) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ++*runs;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;  // a libFuzzer option
    std::filesystem::path path(arg);
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(path)) {
        if (entry.is_regular_file()) RunFile(entry.path(), &runs);
      }
    } else {
      RunFile(path, &runs);
    }
  }
  std::printf("replayed %d inputs\n", runs);
  return 0;
}
