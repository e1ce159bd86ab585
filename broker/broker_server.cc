#include "broker/broker_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/delivery/queue_summary.h"
#include "broker/observability/status_page.h"
#include "broker/report/alliance_report.h"
#include "broker/storage/postgres_store.h"
#include "broker/storage/sqlite_store.h"

namespace refbroker {
namespace {

constexpr const char* kServiceNames[] = {
    "refbroker.v1.ReferralService", "refbroker.v1.DeliveryService", "refbroker.v1.AdminService",
    "refbroker.v1.ResultService",   "refbroker.v1.ConsultService",  "refbroker.v1.AuditService",
    "refbroker.v1.ReportService"};

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Start(
    const config::BrokerOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<BrokerServer> server(new BrokerServer(options));
  RETURN_IF_ERROR(server->Init());
  RETURN_IF_ERROR(server->StartGrpc());
  server->ScheduleHousekeeping();
  boost::asio::post(server->timers_io_, [s = server.get()] { s->RecordLostDeliveries(); });
  server->deadlines_->Start();
  server->consult_deadlines_->Start();
  return server;
}

void PartitionByAlliance(const auth::Registry* registry, storage::PostgresOptions& options) {
  options.alliance_of = [registry](const std::string& code) -> std::string {
    if (const auth::Principal* p = registry->Find(code)) return p->alliance;
    if (registry->FindAlliance(code) != nullptr) return code;
    return "";
  };
  options.alliances.clear();
  for (const auth::Alliance& a : registry->alliances()) options.alliances.push_back(a.id);
}

absl::StatusOr<std::unique_ptr<storage::Store>> BrokerServer::OpenStore() {
  const config::StorageOptions& o = options_.storage;
  if (o.engine == "postgres") {
    storage::PostgresOptions po;
    po.conninfo = o.conninfo;
    po.schema = o.schema;
    po.max_batch = static_cast<size_t>(o.max_batch);
    po.readers = static_cast<size_t>(o.readers);
    PartitionByAlliance(registry_.get(), po);
    ASSIGN_OR_RETURN(auto store, storage::PostgresStore::Open(po));
    spdlog::info("storage: PostgreSQL, schema {}", o.schema);
    return std::unique_ptr<storage::Store>(std::move(store));
  }
  storage::SqliteOptions so;
  so.path = o.path;
  so.max_batch = static_cast<size_t>(o.max_batch);
  so.readers = static_cast<size_t>(o.readers);
  so.checkpoint_interval_ms = o.checkpoint_interval_ms;
  so.slow_statement_ms = o.slow_statement_ms;
  ASSIGN_OR_RETURN(auto store, storage::SqliteStore::Open(so));
  return std::unique_ptr<storage::Store>(std::move(store));
}

absl::Status BrokerServer::Init() {
  ASSIGN_OR_RETURN(registry_, auth::Registry::LoadFile(options_.registry_path));
  ASSIGN_OR_RETURN(store_, OpenStore());
  ASSIGN_OR_RETURN(tls_, tls::ServerTls::Create(tls::TlsFiles{options_.tls.ca, options_.tls.cert,
                                                              options_.tls.key, options_.tls.crl}));
  authenticator_ = std::make_unique<auth::Authenticator>(*registry_, tls_.get());
  policy_ = std::make_unique<auth::AccessPolicy>(*registry_);
  router_ = std::make_unique<routing::ReferralRouter>(*registry_);
  delivery::EngineOptions eo;
  eo.ack_deadline_ms = options_.delivery.ack_deadline_ms;
  eo.max_attempts = static_cast<uint32_t>(options_.delivery.max_attempts);
  eo.nack_retry_delay_ms = options_.delivery.nack_retry_delay_ms;
  eo.workers = options_.server.workers;
  eo.delivery_workers = options_.delivery.workers;
  engine_ = std::make_unique<delivery::DeliveryEngine>(*store_, SystemClock::Get(), eo);
  engine_->SetAckHook([this](const QueueName& q, const storage::AckResult& r) { OnAck(q, r); });
  // The receiver's ack of a new referral and its DELIVERED transition commit together.
  engine_->SetAckFollowUp([this](const QueueName& q) -> storage::AckFollowUp {
    if (q.kind != refbroker::v1::REFERRALS) return nullptr;
    return [this, owner = q.owner](const storage::ReferralRecord& rec) {
      return workflow_->DeliveredChange(rec, owner);
    };
  });
  // Several brokers on one PostgreSQL database: the others' enqueues wake our subscriptions.
  store_->SetEnqueueListener([this](const std::string& queue) { engine_->Wake(queue); });
  ASSIGN_OR_RETURN(auto catalogue,
                   recognition::Catalogue::LoadFile(options_.recognition.catalogue_path));
  catalogue_ = std::make_unique<recognition::CatalogueHolder>(std::move(catalogue));
  domain::ResultLimits limits;
  limits.max_result_bytes = static_cast<size_t>(options_.recognition.max_result_kb) * 1024;
  limits.max_waveform_bytes = static_cast<size_t>(options_.recognition.max_waveform_kb) * 1024;
  results_ = std::make_unique<domain::ResultWorkflow>(
      *store_, *registry_, *catalogue_, SystemClock::Get(), limits,
      [this](const std::string& queue) { engine_->Notify(queue); });
  ASSIGN_OR_RETURN(domain::WorkflowOptions wo, MakeWorkflowOptions());
  domain::ReferralWorkflow::Hooks hooks;
  hooks.notify = [this](const std::string& queue) { engine_->Notify(queue); };
  hooks.deadline_set = [this](Micros due) {
    if (deadlines_) deadlines_->Poke(due);
  };
  hooks.stamp_results = [this](const refbroker::v1::Referral& r, const std::string& receiver) {
    return results_->VerdictsFor(r.patient(), r.attached_result_ids(), receiver,
                                 "referral.attached_result_ids");
  };
  workflow_ = std::make_unique<domain::ReferralWorkflow>(*store_, *policy_, *router_,
                                                         SystemClock::Get(), std::move(wo), hooks);
  deadlines_ = std::make_unique<timers::DeadlineScheduler>(
      timers_io_, SystemClock::Get(),
      [this] {
        auto n = workflow_->EscalateDue();
        if (!n.ok()) spdlog::warn("deadlines: escalation failed: {}", n.status().ToString());
        if (n.ok()) engine_->counters().deadline_breaches += *n;
      },
      [this] { return store_->NextDecisionDue(); });
  RETURN_IF_ERROR(InitConsults());
  metrics_ = std::make_unique<observability::Metrics>();
  metrics_->SetRefresher([this](observability::Metrics& m) {
    m.SyncCounter("store_commits", "group commits (fsyncs) of the store", store_->commits());
    m.SyncCounter("store_writes", "write requests committed", store_->writes());
    auto& c = engine_->counters();
    m.SyncCounter("deliveries", "messages sent to subscribers", c.delivered.load());
    m.SyncCounter("redeliveries", "messages sent again after a missed deadline", c.redelivered);
    m.SyncCounter("acks", "acknowledgements made durable", c.acked.load());
    m.SyncCounter("nacks", "negative acknowledgements", c.nacked.load());
    m.SetGauge("subscriptions", "Subscribe streams connected", engine_->SubscriptionCount());
    m.SetGauge("store_healthy", "1 when the store accepts writes", store_->Health().ok());
    m.SetGauge("audit_backlog", "audit entries of reads on a full disk, waiting for space",
               static_cast<double>(audit_backlog_->size()));
    m.SyncCounter("enqueued", "messages enqueued", c.enqueued.load());
    m.SyncCounter("deadline_breaches", "referral and consult deadlines missed (escalations)",
                  c.deadline_breaches.load());
    Micros now = SystemClock::Get().Now();
    auto stats = store_->ListQueueStats();
    if (!stats.ok()) return;
    std::vector<observability::Metrics::QueueRow> rows;
    for (const storage::QueueStats& q : *stats) {
      observability::Metrics::QueueRow row;
      row.queue = q.queue;
      auto name = QueueName::Parse(q.queue);
      if (name.ok()) {
        row.owner = name->owner;
        const auth::Principal* owner = registry_->Find(name->owner);
        if (owner && name->kind == refbroker::v1::REFERRALS) {
          row.direction = owner->level == auth::Level::kTownship ? "down" : "up";
        }
      }
      row.retained = static_cast<double>(q.retained);
      delivery::QueueSummary s = delivery::Summarize(q, now, *engine_);
      row.depth = static_cast<double>(s.depth);
      row.in_flight = static_cast<double>(s.in_flight);
      row.dead_letters = static_cast<double>(s.dead_letters);
      row.consumers = s.consumers;
      row.oldest_age_seconds = static_cast<double>(s.oldest_age_seconds);
      rows.push_back(std::move(row));
    }
    m.SetQueues(rows);
  });
  store_->SetCommitObserver([this](size_t batch, double seconds) {
    if (metrics_) metrics_->ObserveCommit(batch, seconds);
  });
  return absl::OkStatus();
}

absl::Status BrokerServer::StartGrpc() {
  audit_backlog_ = std::make_unique<audit::AuditBacklog>();
  limiter_ = std::make_unique<auth::RateLimiter>(auth::RateLimits{
      options_.limits.calls_per_second, options_.limits.burst, options_.limits.max_streams});
  service_context_ = std::make_unique<api::ServiceContext>(
      api::ServiceContext{*authenticator_, *policy_, *engine_, *workflow_, *metrics_,
                          options_.delivery, *audit_backlog_, *limiter_});
  referral_service_ = std::make_unique<api::ReferralServiceImpl>(*service_context_);
  delivery_service_ = std::make_unique<api::DeliveryServiceImpl>(*service_context_);
  admin_service_ = std::make_unique<api::AdminServiceImpl>(*service_context_, *registry_);
  result_service_ = std::make_unique<api::ResultServiceImpl>(*service_context_, *results_);
  consult_service_ =
      std::make_unique<api::ConsultServiceImpl>(*service_context_, *consults_, *sessions_);
  audit_ =
      std::make_unique<audit::AuditTrail>(*store_, SystemClock::Get(), options_.audit.archive_dir);
  audit_service_ = std::make_unique<api::AuditServiceImpl>(*service_context_, *audit_);
  report_service_ = std::make_unique<api::ReportServiceImpl>(*service_context_, *registry_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.server.listen, tls_->GrpcCredentials(), &port_);
  builder.SetMaxReceiveMessageSize(options_.server.max_message_bytes);
  builder.RegisterService(referral_service_.get());
  builder.RegisterService(delivery_service_.get());
  builder.RegisterService(admin_service_.get());
  builder.RegisterService(result_service_.get());
  builder.RegisterService(consult_service_.get());
  builder.RegisterService(audit_service_.get());
  builder.RegisterService(report_service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("server.listen: cannot listen on ", options_.server.listen));
  }
  for (const char* name : kServiceNames)
    server_->GetHealthCheckService()->SetServingStatus(name, true);
  server_->GetHealthCheckService()->SetServingStatus(true);
  if (!options_.server.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(
        http_, observability::MetricsHttpServer::Start(options_.server.metrics_listen, *metrics_,
                                                       [this] { return store_->Health(); }));
  }
  if (!options_.server.status_listen.empty()) {
    ASSIGN_OR_RETURN(status_page_,
                     observability::StatusPageServer::Start(
                         options_.server.status_listen, *tls_, *registry_,
                         [this](const auth::Principal& who) { return RenderStatus(who); }));
  }
  spdlog::info("refbroker listening port={} metrics_port={} status_port={} store={} principals={}",
               port_, metrics_port(), status_port(),
               options_.storage.engine == "postgres"
                   ? "postgres schema " + options_.storage.schema  // never the conninfo
                   : options_.storage.path,
               registry_->principals().size());
  return absl::OkStatus();
}

// The status page for an operator or auditor: their queues, and today's headline figures (the
// alliance's calendar day, UTC+8).
absl::StatusOr<std::string> BrokerServer::RenderStatus(const auth::Principal& who) {
  refbroker::v1::ListQueuesResponse queues;
  RETURN_IF_ERROR(admin_service_->DoListQueues(who, refbroker::v1::ListQueuesRequest(), queues));
  Micros now = SystemClock::Get().Now();
  constexpr Micros kDay = 86400LL * 1000000, kChina = 8LL * 3600 * 1000000;
  Micros midnight = (now + kChina) / kDay * kDay - kChina;
  ASSIGN_OR_RETURN(auto today, report::LoadAllianceReport(*store_, *registry_, who.alliance,
                                                          midnight, midnight + kDay));
  return observability::RenderStatusPage(queues, today, who.name, now);
}

absl::StatusOr<domain::WorkflowOptions> BrokerServer::MakeWorkflowOptions() const {
  domain::WorkflowOptions wo;
  wo.emergency_deadline_s = options_.referral.emergency_deadline_s;
  wo.urgent_deadline_s = options_.referral.urgent_deadline_s;
  wo.routine_deadline_s = options_.referral.routine_deadline_s;
  for (size_t i = 0; i < options_.referral.reroutes.size(); ++i) {
    const config::RerouteOption& r = options_.referral.reroutes[i];
    const auth::Principal* from = registry_->Find(r.from);
    const auth::Principal* to = registry_->Find(r.to);
    if (from == nullptr || to == nullptr || to->role != auth::Role::kHospital ||
        from->alliance != to->alliance) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config referral.reroute[", i, "]: from and to must be hospitals of one alliance"));
    }
    wo.reroutes.push_back({r.from, r.specialty, r.to});
  }
  return wo;
}

absl::StatusOr<domain::ConsultOptions> BrokerServer::MakeConsultOptions() const {
  auto convert = [](const config::PriorityDeadlineOption& d) {
    return domain::PriorityDeadlines{d.emergency_s, d.urgent_s, d.routine_s};
  };
  domain::ConsultOptions co;
  co.accept = convert(options_.consult.accept);
  co.report = convert(options_.consult.report);
  co.report_by_service.clear();
  for (const auto& [name, d] : options_.consult.report_by_service) {
    refbroker::v1::ConsultServiceType service;
    if (!refbroker::v1::ConsultServiceType_Parse(name, &service) ||
        service == refbroker::v1::CONSULT_SERVICE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("config consult.report.", name, ": not a consult service"));
    }
    co.report_by_service[service] = convert(d);
  }
  return co;
}

absl::Status BrokerServer::InitConsults() {
  ASSIGN_OR_RETURN(domain::ConsultOptions co, MakeConsultOptions());
  sessions_ = std::make_unique<api::ConsultSessions>();
  domain::ConsultWorkflow::Hooks hooks;
  hooks.notify = [this](const std::string& queue) { engine_->Notify(queue); };
  hooks.deadline_set = [this](Micros due) {
    if (consult_deadlines_) consult_deadlines_->Poke(due);
  };
  hooks.stamp_results = [this](const refbroker::v1::Patient& patient,
                               const google::protobuf::RepeatedPtrField<std::string>& ids,
                               const std::string& receiver, const std::string& field) {
    return results_->VerdictsFor(patient, ids, receiver, field);
  };
  hooks.publish_reading =
      [this](const auth::Principal& publisher,
             const refbroker::v1::ResultRecord& r) -> absl::StatusOr<refbroker::v1::ResultRecord> {
    ASSIGN_OR_RETURN(auto out, results_->Publish(publisher, r));
    return out.result();
  };
  hooks.submit_referral =
      [this](const auth::Principal& sender,
             const refbroker::v1::Referral& r) -> absl::StatusOr<refbroker::v1::Referral> {
    ASSIGN_OR_RETURN(auto out, workflow_->Submit(sender, r, r.converted_from_consult_id()));
    return out.referral;
  };
  hooks.message_stored = [this](const refbroker::v1::ConsultMessage& m) { sessions_->Publish(m); };
  consults_ = std::make_unique<domain::ConsultWorkflow>(*store_, *registry_, *policy_,
                                                        SystemClock::Get(), std::move(co), hooks);
  consult_deadlines_ = std::make_unique<timers::DeadlineScheduler>(
      timers_io_, SystemClock::Get(),
      [this] {
        auto n = consults_->EscalateDue();
        if (n.ok()) engine_->counters().deadline_breaches += *n;
        if (!n.ok())
          spdlog::warn("consult deadlines: escalation failed: {}", n.status().ToString());
      },
      [this] { return store_->NextConsultDue(); });
  return absl::OkStatus();
}

// A store written by a version whose DELIVERED transition followed the ack in a transaction of
// its own may hold SUBMITTED referrals whose delivery was acked before a crash: record DELIVERED
// for them now, so the sender gets its update. (An ack now commits its transition with it, so
// once a sweep finds nothing the store says so, and later starts read nothing for it.)
void BrokerServer::RecordLostDeliveries() {
  for (;;) {
    auto pending = store_->ListAckedButUndelivered(500);
    if (!pending.ok()) {
      spdlog::warn("start-up delivery sweep failed: {}", pending.status().ToString());
      return;
    }
    if (pending->empty()) {
      absl::Status done = store_->FinishDeliverySweep();
      if (!done.ok()) spdlog::warn("start-up delivery sweep not marked done: {}", done.ToString());
      return;
    }
    size_t recorded = 0;
    for (const auto& [id, receiver] : *pending) {
      if (workflow_->MarkDelivered(id, receiver).ok()) recorded++;
    }
    spdlog::info("start-up: recorded DELIVERED for {} referral(s) acked before a crash", recorded);
    if (recorded == 0) return;
  }
}

// The receiver's system acked a new referral: its DELIVERED transition committed with the ack
// (the engine's ack follow-up); announce the update to the sender.
void BrokerServer::OnAck(const QueueName& queue, const storage::AckResult& result) {
  if (queue.kind != refbroker::v1::REFERRALS || !result.follow_up) return;
  workflow_->Recorded(*result.follow_up);
}

void BrokerServer::ScheduleHousekeeping() {
  housekeeping_timer_ = std::make_unique<boost::asio::steady_timer>(timers_io_);
  housekeeping_timer_->expires_after(std::chrono::seconds(1));
  housekeeping_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    Housekeeping();
    ScheduleHousekeeping();
  });
  if (!timers_thread_.joinable()) timers_thread_ = std::thread([this] { timers_io_.run(); });
}

// Every second: reflect store health in gRPC health; every prune_interval_s: retention of
// messages and result records; every audit.archive_interval_s: audit entries to the archive.
void BrokerServer::Housekeeping() {
  bool healthy = store_->Health().ok();
  if (healthy != serving_) {
    serving_ = healthy;
    if (!healthy) spdlog::error("store failed, NOT_SERVING: {}", store_->Health().ToString());
    for (const char* name : kServiceNames) {
      server_->GetHealthCheckService()->SetServingStatus(name, healthy);
    }
    server_->GetHealthCheckService()->SetServingStatus(healthy);
  }
  Micros now = SystemClock::Get().Now();
  if (healthy && audit_backlog_->size() > 0) {
    absl::Status flushed = audit_backlog_->Flush(*store_);
    if (!flushed.ok() && !absl::IsResourceExhausted(flushed)) {
      spdlog::warn("audit backlog not flushed: {}", flushed.ToString());
    }
  }
  if (healthy && now - last_prune_ >= options_.delivery.prune_interval_s * 1000000LL) {
    last_prune_ = now;
    int64_t keep_s = options_.delivery.retention_seconds > 0
                         ? options_.delivery.retention_seconds
                         : options_.delivery.retention_hours * 3600LL;
    auto pruned = store_->Prune(now - keep_s * 1000000LL);
    if (pruned.ok() && *pruned > 0) spdlog::info("retention pruned={}", *pruned);
    if (!pruned.ok()) spdlog::warn("retention failed: {}", pruned.status().ToString());
    if (int days = options_.recognition.result_retention_days; days > 0) {
      auto results = store_->PruneResults(now - days * 86400LL * 1000000LL);
      if (results.ok() && *results > 0) spdlog::info("retention results pruned={}", *results);
      if (!results.ok()) spdlog::warn("result retention failed: {}", results.status().ToString());
    }
  }
  if (healthy && now - last_archive_ >= options_.audit.archive_interval_s * 1000000LL) {
    last_archive_ = now;
    auto archived = audit_->Archive(now - options_.audit.retention_days * 86400LL * 1000000LL);
    if (!archived.ok()) spdlog::warn("audit archive failed: {}", archived.status().ToString());
  }
}

absl::Status BrokerServer::ReloadCatalogue() {
  absl::Status s = catalogue_->Reload(options_.recognition.catalogue_path);
  if (s.ok()) {
    spdlog::info("recognition catalogue reloaded version={}", catalogue_->Get()->version());
  } else {
    spdlog::warn("recognition catalogue not reloaded (version {} stays): {}",
                 catalogue_->Get()->version(), s.ToString());
  }
  return s;
}

absl::Status BrokerServer::ReloadTls() {
  RETURN_IF_ERROR(tls_->Reload());
  if (status_page_) return status_page_->ReloadTls();
  return absl::OkStatus();
}

void BrokerServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (store_) store_->SetEnqueueListener(nullptr);
  if (server_ == nullptr) {  // the start failed before serving: nothing to drain
    timers_io_.stop();
    if (timers_thread_.joinable()) timers_thread_.join();
    if (engine_) engine_->Shutdown();
    return;
  }
  spdlog::info("shutting down: draining");
  server_->GetHealthCheckService()->Shutdown();
  engine_->FailAll(absl::UnavailableError("broker shutting down; reconnect"));
  sessions_->CloseAll();
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::seconds(options_.server.drain_seconds));
  timers_io_.stop();
  if (timers_thread_.joinable()) timers_thread_.join();
  engine_->Shutdown();
  if (size_t held = audit_backlog_->size(); held > 0) {
    absl::Status s = audit_backlog_->Flush(*store_);
    if (!s.ok())
      spdlog::error("audit: {} entries of reads on a full disk lost: {}", held, s.ToString());
  }
  status_page_.reset();
  http_.reset();
  spdlog::info("shut down cleanly");
}

BrokerServer::~BrokerServer() {
  Shutdown();
  server_.reset();
  engine_.reset();
  store_.reset();
}

}  // namespace refbroker
