// refbroker: the daemon. Parses flags and the TOML config, starts the BrokerServer, tells
// systemd it is ready (after the store's recovery, Type=notify) and feeds the watchdog while
// the store accepts writes; SIGHUP reloads the recognition catalogue; SIGTERM/SIGINT drain.
//   refbroker -c refbroker.toml [--data FILE] ...
//   refbroker backup --data FILE --out COPY     online backup of a live store
// Everything else lives in broker_core.

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>

#include "broker/broker_server.h"
#include "broker/observability/logging.h"
#include "broker/storage/sqlite_backup.h"

int main(int argc, char** argv) {
  CLI::App app{"refbroker — durable referral and result broker of a county medical community"};
  std::string config_path;
  std::string listen, data, port_file, metrics_listen, log_level;
  app.add_option("-c,--config", config_path, "TOML config file (deploy/refbroker.toml)");
  std::string backup_from, backup_to;
  auto* backup = app.add_subcommand("backup", "copy a live store with SQLite's online backup API");
  backup->add_option("--data", backup_from, "the store's database file")->required();
  backup->add_option("--out", backup_to, "the copy (must not exist)")->required();
  app.add_option("--listen", listen, "override server.listen (host:port, port 0 = any)");
  app.add_option("--data", data, "override storage.path (SQLite database file)");
  app.add_option("--port-file", port_file,
                 "write '<grpc port> <metrics port> <status port>' to this file once listening");
  app.add_option("--metrics-listen", metrics_listen, "override server.metrics_listen");
  std::string status_listen;
  app.add_option("--status-listen", status_listen, "override server.status_listen");
  app.add_option("--log-level", log_level, "override log.level");
  CLI11_PARSE(app, argc, argv);
  if (backup->parsed()) {
    auto out = refbroker::storage::SqliteBackup(backup_from, backup_to);
    if (!out.ok()) {
      std::cerr << "refbroker backup: " << out.status().message() << "\n";
      return 1;
    }
    std::cout << "backup of " << backup_from << " written to " << backup_to << ": " << out->pages
              << " pages, " << out->bytes << " bytes, quick_check ok\n";
    return 0;
  }
  if (config_path.empty()) {
    std::cerr << "refbroker: --config is required\n";
    return 2;
  }

  auto options = refbroker::config::BrokerOptions::LoadFile(config_path);
  if (!options.ok()) {
    std::cerr << "refbroker: " << options.status().message() << "\n";
    return 2;
  }
  if (!listen.empty()) options->server.listen = listen;
  if (!data.empty()) options->storage.path = data;
  if (!port_file.empty()) options->server.port_file = port_file;
  if (!metrics_listen.empty()) options->server.metrics_listen = metrics_listen;
  if (!status_listen.empty()) options->server.status_listen = status_listen;
  if (!log_level.empty()) options->log.level = log_level;
  if (auto s = refbroker::observability::SetUpLogging(options->log.level, options->log.format);
      !s.ok()) {
    std::cerr << "refbroker: " << s.message() << "\n";
    return 2;
  }

  auto server = refbroker::BrokerServer::Start(*options);
  if (!server.ok()) {
    spdlog::critical("refbroker cannot start: {}", server.status().ToString());
    return 1;
  }
  if (!options->server.port_file.empty()) {
    std::string tmp = options->server.port_file + ".tmp";
    std::ofstream(tmp) << (*server)->port() << " " << (*server)->metrics_port() << " "
                       << (*server)->status_port() << "\n";
    std::rename(tmp.c_str(), options->server.port_file.c_str());
  }

  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: reloading the recognition catalogue and the TLS material");
        sd_notify(0, "RELOADING=1");
        (void)(*server)->ReloadCatalogue();
        (void)(*server)->ReloadTls();
        sd_notify(0, "READY=1");
        wait_signal();
        return;
      }
      spdlog::info("signal {} received", sig);
      io.stop();
    });
  };
  wait_signal();
  // systemd: ready only now, after the store was opened, checked and recovered.
  sd_notifyf(0, "READY=1\nSTATUS=serving on port %d\nMAINPID=%lu", (*server)->port(),
             static_cast<unsigned long>(getpid()));
  uint64_t watchdog_usec = 0;
  boost::asio::steady_timer watchdog(io);
  std::function<void()> feed = [&] {
    // Fed only while the store accepts writes: a latched I/O error gets the broker restarted.
    if ((*server)->Health().ok()) sd_notify(0, "WATCHDOG=1");
    watchdog.expires_after(std::chrono::microseconds(watchdog_usec / 2));
    watchdog.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) feed();
    });
  };
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) feed();
  io.run();
  sd_notify(0, "STOPPING=1");
  (*server)->Shutdown();
  server->reset();
  return 0;
}
