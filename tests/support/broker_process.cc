#include "tests/support/broker_process.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_replace.h"

extern char** environ;

namespace refbroker::testing {

std::string CertsDir() { return REFBROKER_TEST_CERTS; }
std::string CertPath(const std::string& stem) { return CertsDir() + "/" + stem + ".crt"; }
std::string KeyPath(const std::string& stem) { return CertsDir() + "/" + stem + ".key"; }

bool BrokerConfig::TestStoreIsPostgres() {
  const char* store = std::getenv("REFBROKER_TEST_STORE");
  return store != nullptr && std::string(store) == "postgres";
}

namespace {

// Runs `sql` on the test cluster (search_path = schema); "" or the error.
std::string PgExec(const std::string& schema, const std::string& sql, int64_t* count = nullptr) {
  PGconn* c = PQconnectdb(TestClusterConninfo().c_str());
  std::string error;
  if (PQstatus(c) != CONNECTION_OK) {
    error = PQerrorMessage(c);
  } else {
    PQclear(PQexec(c, ("SET search_path TO " + schema).c_str()));
    PGresult* r = PQexec(c, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      error = PQresultErrorMessage(r);
    } else if (count != nullptr) {
      *count = PQntuples(r) > 0 ? std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10) : -1;
    }
    PQclear(r);
  }
  PQfinish(c);
  return error;
}

}  // namespace

void WriteTwoAllianceRegistry(
    const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& neighbour_edits) {
  auto read = [](const std::string& relative) {
    std::ifstream in(std::string(REFBROKER_SOURCE_DIR) + relative);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  std::ofstream out(path);
  out << read("/deploy/registry.toml") << "\n"
      << absl::StrReplaceAll(read("/tests/integration/neighbour-registry.toml"), neighbour_edits);
}

void DropTestSchema(const std::string& schema) {
  PgExec("public", "DROP SCHEMA IF EXISTS " + schema + " CASCADE");
}

BrokerProcess::BrokerProcess(BrokerConfig config) : config_(config) {
  std::random_device rd;
  unsigned tag = rd();
  dir_ = (std::filesystem::temp_directory_path() /
          ("refbroker-it-" + std::to_string(getpid()) + "-" + std::to_string(tag)))
             .string();
  std::filesystem::create_directories(dir_);
  if (config_.postgres) {
    pg_schema_ = config_.pg_schema.empty()
                     ? "it_" + std::to_string(getpid()) + "_" + std::to_string(tag)
                     : config_.pg_schema;
  }
  WriteConfig();
}

BrokerProcess::~BrokerProcess() {
  if (pid_ > 0) Kill();
  std::error_code ec;
  if (std::getenv("REFBROKER_KEEP_TEST_DIRS") == nullptr) {
    std::filesystem::remove_all(dir_, ec);
    // A schema shared with other brokers is left to whoever named it.
    if (config_.postgres && config_.pg_schema.empty()) {
      PgExec("public", "DROP SCHEMA IF EXISTS " + pg_schema_ + " CASCADE");
    }
  }
}

std::string BrokerProcess::ExecSql(const std::string& sql) const {
  if (config_.postgres) return PgExec(pg_schema_, sql);
  sqlite3* db = nullptr;
  std::string error;
  if (sqlite3_open(db_path().c_str(), &db) != SQLITE_OK ||
      sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db);
  }
  sqlite3_close(db);
  return error;
}

void BrokerProcess::WriteConfig() {
  std::ofstream out(dir_ + "/refbroker.toml");
  const std::string tls_dir = config_.tls_dir.empty() ? CertsDir() : config_.tls_dir;
  out << "[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n"
      << "status_listen = \"127.0.0.1:0\"\n"
      << "workers = 16\ndrain_seconds = " << config_.drain_seconds << "\n"
      << "[tls]\nca = \"" << tls_dir << "/ca.crt\"\ncert = \"" << tls_dir
      << "/broker.crt\"\nkey = \"" << tls_dir << "/broker.key\"\n"
      << (config_.tls_crl.empty() ? "" : "crl = \"" + config_.tls_crl + "\"\n")
      << "[registry]\npath = \""
      << (config_.registry_path.empty()
              ? std::string(REFBROKER_SOURCE_DIR) + "/deploy/registry.toml"
              : config_.registry_path)
      << "\"\n"
      << (config_.postgres
              ? "[storage]\nengine = \"postgres\"\nconninfo = \"" +
                    (config_.pg_conninfo.empty() ? TestClusterConninfo() : config_.pg_conninfo) +
                    "\"\nschema = \"" + pg_schema_ + "\"\n"
              : "[storage]\npath = \"" + db_path() + "\"\n")
      << config_.storage_toml << "[recognition]\ncatalogue = \"" << REFBROKER_SOURCE_DIR
      << "/deploy/recognition.toml\"\n"
      << "max_waveform_kb = 64\n"
      << "[delivery]\nack_deadline_ms = " << config_.ack_deadline_ms
      << "\nmax_attempts = " << config_.max_attempts
      << "\nnack_retry_delay_ms = " << config_.nack_retry_delay_ms << "\n"
      << config_.delivery_toml
      << "[referral]\nemergency_deadline_s = " << config_.emergency_deadline_s
      << "\nurgent_deadline_s = " << config_.urgent_deadline_s
      << "\nroutine_deadline_s = " << config_.routine_deadline_s << "\n";
  for (const auto& r : config_.reroutes) {
    out << "[[referral.reroute]]\nfrom = \"" << r[0] << "\"\nspecialty = \"" << r[1]
        << "\"\nto = \"" << r[2] << "\"\n";
  }
  out << config_.extra_toml << "\n[log]\nlevel = \"" << config_.log_level << "\"\n";
}

absl::Status BrokerProcess::Start() {
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  std::string port_file = dir_ + "/port";
  std::filesystem::remove(port_file);
  std::vector<std::string> args = {REFBROKER_BINARY, "-c", dir_ + "/refbroker.toml", "--port-file",
                                   port_file};
  if (port_ != 0) {
    args.push_back("--listen");
    args.push_back(address());
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  // The broker's private copy of its TLS key goes in the test's directory (as systemd's
  // RuntimeDirectory= gives it one), so a broker the test kills leaves nothing behind.
  std::string runtime_dir = "RUNTIME_DIRECTORY=" + dir_;
  std::vector<char*> envp;
  for (auto& e : config_.env) envp.push_back(e.data());  // first: getenv takes the first
  envp.push_back(runtime_dir.data());
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  int rc = posix_spawn(&pid_, REFBROKER_BINARY, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    return absl::InternalError("posix_spawn refbroker failed");
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(port_file);
    int grpc_port = 0, metrics_port = 0, status_port = 0;
    if (in >> grpc_port >> metrics_port >> status_port && grpc_port > 0) {
      port_ = grpc_port;
      metrics_port_ = metrics_port;
      status_port_ = status_port;
      return absl::OkStatus();
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError("refbroker exited during start; see " + log_path());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return absl::DeadlineExceededError("refbroker did not start; see " + log_path());
}

int64_t BrokerProcess::CountRows(const char* table) const {
  if (config_.postgres) {
    int64_t n = -1;
    std::string error = PgExec(pg_schema_, std::string("SELECT COUNT(*) FROM ") + table, &n);
    return error.empty() ? n : -1;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return -1;
  }
  // The broker writes (audit entries too, even for refused calls): wait out a busy moment.
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, (std::string("SELECT COUNT(*) FROM ") + table).c_str(), -1, &st, nullptr);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

int BrokerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void BrokerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace refbroker::testing
