// Fuzz targets for the files an operator writes: the broker's config (BrokerOptions), the
// alliance registry and the recognition catalogue. Built three times, REFBROKER_FUZZ_LOADER
// naming which: whatever the text, the loader answers a status or a value, and a loaded value
// passes its own checks or is refused by them; never a crash, a leak or a hang.

#include <cstdint>
#include <string>

#include "broker/auth/registry.h"
#include "broker/config/broker_options.h"
#include "broker/recognition/catalogue.h"

#define REFBROKER_LOADER_CONFIG 1
#define REFBROKER_LOADER_REGISTRY 2
#define REFBROKER_LOADER_CATALOGUE 3

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
#if REFBROKER_FUZZ_LOADER == REFBROKER_LOADER_CONFIG
  auto options = refbroker::config::BrokerOptions::LoadString(text, "/nonexistent");
  if (options.ok()) (void)options->Validate();
#elif REFBROKER_FUZZ_LOADER == REFBROKER_LOADER_REGISTRY
  auto registry = refbroker::auth::Registry::LoadString(text);
  if (registry.ok()) {
    // Every reference a loaded registry holds resolves: the checks the loader promises.
    for (const auto& alliance : (*registry)->alliances()) {
      if ((*registry)->Find(alliance.default_receiver) == nullptr) __builtin_trap();
    }
    for (const auto& principal : (*registry)->principals()) {
      if ((*registry)->FindAlliance(principal.alliance) == nullptr) __builtin_trap();
    }
  }
#elif REFBROKER_FUZZ_LOADER == REFBROKER_LOADER_CATALOGUE
  (void)refbroker::recognition::Catalogue::LoadString(text);
#else
#error "REFBROKER_FUZZ_LOADER must name a loader"
#endif
  return 0;
}
