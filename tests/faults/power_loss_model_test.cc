// The power-loss model itself (fault_shim.c journals, power_loss.h drops): a write followed by
// an fsync survives the cut, a write after the last fsync does not, and a file grown after its
// last fsync goes back to its synced size. Driven by dd under the shim, not by the broker, so
// that what was synced is known exactly.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/faults/power_loss.h"
#include "tests/support/files.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace fs = std::filesystem;

TEST(PowerLossModel, OnlyWhatWasSyncedSurvivesTheCut) {
  std::string dir = fs::temp_directory_path() / ("power-loss-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string file = dir + "/refbroker.db";
  std::string shim = std::string("LD_PRELOAD=") + REFBROKER_FAULT_SHIM +
                     " ASAN_OPTIONS=verify_asan_link_order=0 REFBROKER_POWERLOSS_UNDO=1"
                     " REFBROKER_FAULT_TARGET=/refbroker.db ";
  std::string out;
  // Synced: "durable-part". Then, unsynced: an overwrite inside it and an append after it.
  ASSERT_EQ(RunCommand(shim + "sh -c 'printf durable-part | dd of=" + file +
                           " conv=fsync status=none && printf XX | dd of=" + file +
                           " bs=1 seek=2 conv=notrunc status=none && printf %s -tail | dd of=" +
                           file + " bs=1 seek=12 conv=notrunc status=none'",
                       &out),
            0)
      << out;
  ASSERT_EQ(ReadAll(file), "duXXble-part-tail");
  ASSERT_TRUE(fs::exists(file + ".undo"));
  auto dropped = DropUnsyncedWrites(dir);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(dropped->writes, 7u);  // "XX" and "-tail", one byte per write (bs=1)
  EXPECT_EQ(ReadAll(file), "durable-part");
  EXPECT_FALSE(fs::exists(file + ".undo"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace refbroker::testing
