#include "broker/storage/internal/pg_listener.h"

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>

namespace refbroker::storage::internal {

PgListener::PgListener(std::string conninfo, std::string schema)
    : conninfo_(std::move(conninfo)), schema_(std::move(schema)) {
  if (pipe(wake_fds_) != 0) wake_fds_[0] = wake_fds_[1] = -1;
  thread_ = std::thread([this] { Run(); });
}

PgListener::~PgListener() {
  stop_ = true;
  if (wake_fds_[1] >= 0) (void)!write(wake_fds_[1], "x", 1);
  thread_.join();
  for (int fd : wake_fds_) {
    if (fd >= 0) close(fd);
  }
}

void PgListener::SetCallback(Callback cb) {
  std::lock_guard<std::mutex> lock(cb_mu_);
  cb_ = std::move(cb);
}

void PgListener::Deliver(const std::string& queue) {
  std::lock_guard<std::mutex> lock(cb_mu_);
  if (cb_) cb_(queue);
}

void PgListener::Run() {
  pthread_setname_np(pthread_self(), "rb-pg-listen");
  bool was_connected = false;
  while (!stop_) {
    PGconn* conn = PQconnectdb(conninfo_.c_str());
    std::string listen = "LISTEN \"" + Channel(schema_) + "\"";
    PGresult* r = PQstatus(conn) == CONNECTION_OK ? PQexec(conn, listen.c_str()) : nullptr;
    bool ok = r != nullptr && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
      PQfinish(conn);
      // The database is away: try again shortly (the writer and readers report it).
      pollfd p{wake_fds_[0], POLLIN, 0};
      poll(&p, 1, 1000);
      continue;
    }
    // Messages enqueued while this broker was not listening (a start, a lost connection).
    if (was_connected) spdlog::info("storage: listening for other brokers' messages again");
    was_connected = true;
    Deliver("");
    while (!stop_) {
      pollfd fds[2] = {{PQsocket(conn), POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
      if (poll(fds, 2, 1000) < 0) continue;
      if (PQconsumeInput(conn) == 0) break;  // connection lost
      while (PGnotify* n = PQnotifies(conn)) {
        std::string queue = n->extra != nullptr ? n->extra : "";
        PQfreemem(n);
        Deliver(queue);
      }
      if (PQstatus(conn) != CONNECTION_OK) break;
    }
    PQfinish(conn);
  }
}

}  // namespace refbroker::storage::internal
