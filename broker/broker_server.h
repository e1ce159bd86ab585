#pragma once
// BrokerServer: one running refbroker: registry, store, delivery engine, gRPC services (with
// mTLS, health checking and reflection), the metrics endpoint and background timers.
// main() only parses options, calls Start(), waits for a signal and calls Shutdown().

#include <grpcpp/grpcpp.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "broker/api/admin_service.h"
#include "broker/api/audit_service.h"
#include "broker/api/consult_service.h"
#include "broker/api/consult_sessions.h"
#include "broker/api/delivery_service.h"
#include "broker/api/referral_service.h"
#include "broker/api/result_service.h"
#include "broker/audit/audit_trail.h"
#include "broker/auth/access_policy.h"
#include "broker/auth/authenticator.h"
#include "broker/auth/registry.h"
#include "broker/config/broker_options.h"
#include "broker/delivery/delivery_engine.h"
#include "broker/domain/consult_workflow.h"
#include "broker/domain/referral_workflow.h"
#include "broker/domain/result_workflow.h"
#include "broker/observability/metrics.h"
#include "broker/observability/metrics_http_server.h"
#include "broker/observability/status_page_server.h"
#include "broker/recognition/catalogue.h"
#include "broker/routing/referral_router.h"
#include "broker/storage/postgres_store.h"
#include "broker/storage/store.h"
#include "broker/timers/deadline_scheduler.h"
#include "broker/tls/server_tls.h"

namespace refbroker {

// Partitions a PostgreSQL store by the registry's alliances: an institution's rows (and its
// queues') go to its alliance's partition, an alliance's own queue (the operators') to that
// alliance's, and every alliance gets its partitions at start. `registry` outlives the store.
void PartitionByAlliance(const auth::Registry* registry, storage::PostgresOptions& options);

class BrokerServer {
 public:
  static absl::StatusOr<std::unique_ptr<BrokerServer>> Start(const config::BrokerOptions& options);
  ~BrokerServer();
  BrokerServer(const BrokerServer&) = delete;
  BrokerServer& operator=(const BrokerServer&) = delete;

  int port() const { return port_; }
  int metrics_port() const { return http_ ? http_->port() : 0; }
  int status_port() const { return status_page_ ? status_page_->port() : 0; }

  // OK while the store accepts writes (feeds the systemd watchdog).
  absl::Status Health() { return store_->Health(); }
  // Loads the recognition catalogue again (SIGHUP); keeps the current one if it fails.
  absl::Status ReloadCatalogue();
  // Loads the TLS certificates, key, CA and CRL again (SIGHUP) for the API and the status page;
  // keeps the current ones if any fails its checks. Open connections stay.
  absl::Status ReloadTls();

  // Drains: health NOT_SERVING, subscribers told to reconnect elsewhere (UNAVAILABLE, their
  // unacked messages released), in-flight calls given drain_seconds, then everything stops.
  // Idempotent.
  void Shutdown();

 private:
  explicit BrokerServer(const config::BrokerOptions& options) : options_(options) {}
  absl::Status Init();
  // The store the config names: the embedded SQLite file, or a PostgreSQL database.
  absl::StatusOr<std::unique_ptr<storage::Store>> OpenStore();
  absl::Status StartGrpc();
  absl::StatusOr<domain::WorkflowOptions> MakeWorkflowOptions() const;
  absl::StatusOr<domain::ConsultOptions> MakeConsultOptions() const;
  absl::Status InitConsults();
  absl::StatusOr<std::string> RenderStatus(const auth::Principal& who);
  void ScheduleHousekeeping();
  void Housekeeping();
  void OnAck(const QueueName& queue, const storage::AckResult& result);
  void RecordLostDeliveries();

  const config::BrokerOptions options_;
  // Declared before every timer that runs on it: members are destroyed in reverse order, and
  // a timer must not outlive its io_context (ASan caught exactly that at shutdown).
  boost::asio::io_context timers_io_;
  std::unique_ptr<auth::Registry> registry_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<tls::ServerTls> tls_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<auth::AccessPolicy> policy_;
  std::unique_ptr<routing::ReferralRouter> router_;
  std::unique_ptr<delivery::DeliveryEngine> engine_;
  std::unique_ptr<recognition::CatalogueHolder> catalogue_;
  std::unique_ptr<domain::ResultWorkflow> results_;
  std::unique_ptr<domain::ReferralWorkflow> workflow_;
  std::unique_ptr<timers::DeadlineScheduler> deadlines_;
  std::unique_ptr<api::ConsultSessions> sessions_;
  std::unique_ptr<domain::ConsultWorkflow> consults_;
  std::unique_ptr<timers::DeadlineScheduler> consult_deadlines_;
  std::unique_ptr<observability::Metrics> metrics_;
  std::unique_ptr<audit::AuditBacklog> audit_backlog_;
  std::unique_ptr<auth::RateLimiter> limiter_;
  std::unique_ptr<api::ServiceContext> service_context_;
  std::unique_ptr<api::ReferralServiceImpl> referral_service_;
  std::unique_ptr<api::DeliveryServiceImpl> delivery_service_;
  std::unique_ptr<api::AdminServiceImpl> admin_service_;
  std::unique_ptr<api::ResultServiceImpl> result_service_;
  std::unique_ptr<api::ConsultServiceImpl> consult_service_;
  std::unique_ptr<audit::AuditTrail> audit_;
  std::unique_ptr<api::AuditServiceImpl> audit_service_;
  std::unique_ptr<api::ReportServiceImpl> report_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<observability::MetricsHttpServer> http_;
  std::unique_ptr<observability::StatusPageServer> status_page_;
  std::unique_ptr<boost::asio::steady_timer> housekeeping_timer_;
  std::thread timers_thread_;
  Micros last_prune_ = 0;
  Micros last_archive_ = 0;
  bool serving_ = true;
  bool shut_down_ = false;
  int port_ = 0;
};

}  // namespace refbroker
