#pragma once
// PgListener: tells this broker when any broker on the same database enqueued messages.
//
// Enqueues NOTIFY the schema's channel with the queue's name inside their transaction, so a
// notification arrives only after the commit (PostgreSQL delivers them at COMMIT, and drops
// those of a rolled-back transaction). This thread LISTENs on its own connection and calls the
// callback with each queue; after it lost and regained the connection (notifications sent in
// between are gone) it calls the callback with "" — "anything may have changed". Subscriptions
// also look at their queue every few seconds on their own, so a lost notification delays a
// delivery, never loses it.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "broker/storage/internal/pg_conn.h"

namespace refbroker::storage::internal {

class PgListener {
 public:
  using Callback = std::function<void(const std::string& queue)>;

  PgListener(std::string conninfo, std::string schema);
  ~PgListener();  // stops the thread
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  // Replaces the callback (nullptr: none); after it returns the old one is no longer running.
  void SetCallback(Callback cb);
  // The channel name: refbroker_<schema>.
  static std::string Channel(const std::string& schema) { return "refbroker_" + schema; }

 private:
  void Run();
  void Deliver(const std::string& queue);

  const std::string conninfo_;
  const std::string schema_;
  std::mutex cb_mu_;
  Callback cb_;  // guarded by cb_mu_
  std::atomic<bool> stop_{false};
  int wake_fds_[2] = {-1, -1};  // a pipe: the destructor wakes the poll
  std::thread thread_;
};

}  // namespace refbroker::storage::internal
