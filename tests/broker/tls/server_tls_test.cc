#include "broker/tls/server_tls.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/scratch_dir.h"

namespace refbroker::tls {
namespace {

namespace fs = std::filesystem;

// A process id nobody runs under: a child that has exited and been reaped.
pid_t DeadPid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

// A directory as a broker's private copy looks, with a key in it.
fs::path CopyWithKey(const fs::path& base, const std::string& name) {
  fs::path dir = base / name;
  fs::create_directories(dir);
  std::ofstream(dir / "identity.pem") << "(a certificate and its key)\n";
  return dir;
}

std::vector<fs::path> OwnCopies(const fs::path& base) {
  std::vector<fs::path> out;
  const std::string prefix = "refbroker-tls-" + std::to_string(::getpid()) + "-";
  for (const auto& e : fs::directory_iterator(base)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  }
  return out;
}

TEST(ServerTls, AKilledBrokersCopyOfItsKeyIsRemovedByTheNextBrokerAndARunningOnesIsKept) {
  const fs::path base = testing::ScratchDir() / "tls-runtime";
  fs::remove_all(base);
  fs::create_directories(base);
  const fs::path killed =
      CopyWithKey(base, "refbroker-tls-" + std::to_string(DeadPid()) + "-a1B2c3");
  const fs::path running =
      CopyWithKey(base, "refbroker-tls-" + std::to_string(::getppid()) + "-d4E5f6");
  // A container's broker is process 1 after every restart: a copy under this process's own id
  // was left by an earlier one.
  const fs::path same_pid =
      CopyWithKey(base, "refbroker-tls-" + std::to_string(::getpid()) + "-g7H8i9");
  const fs::path not_a_copy = CopyWithKey(base, "refbroker-tls-notes");
  const fs::path unrelated = CopyWithKey(base, "something-else-1");

  ASSERT_EQ(::setenv("RUNTIME_DIRECTORY", base.c_str(), 1), 0);
  const std::string certs = REFBROKER_TEST_CERTS;
  auto tls = ServerTls::Create(
      TlsFiles{certs + "/ca.crt", certs + "/broker.crt", certs + "/broker.key", ""});
  ::unsetenv("RUNTIME_DIRECTORY");
  ASSERT_TRUE(tls.ok()) << tls.status();

  EXPECT_FALSE(fs::exists(killed));
  EXPECT_FALSE(fs::exists(same_pid));
  EXPECT_TRUE(fs::exists(running / "identity.pem"));
  EXPECT_TRUE(fs::exists(not_a_copy / "identity.pem"));
  EXPECT_TRUE(fs::exists(unrelated / "identity.pem"));
  // Its own copy is named by its process, so the next broker can tell whether it still runs.
  auto own = OwnCopies(base);
  ASSERT_EQ(own.size(), 1u);
  EXPECT_TRUE(fs::exists(own[0] / "identity.pem"));
  EXPECT_EQ(fs::status(own[0]).permissions() & fs::perms::all, fs::perms::owner_all);

  tls->reset();
  EXPECT_TRUE(OwnCopies(base).empty()) << "a broker that stops removes its copy";
  EXPECT_TRUE(fs::exists(running / "identity.pem"));
}

TEST(ServerTls, RemovingStaleCopiesOfABaseThatDoesNotExistRemovesNothing) {
  EXPECT_EQ(RemoveStaleTlsCopies((testing::ScratchDir() / "no-such-dir").string()), 0);
}

}  // namespace
}  // namespace refbroker::tls
