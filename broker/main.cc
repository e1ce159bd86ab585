// refbroker: the daemon. Parses flags and the TOML config, starts the BrokerServer, waits for
// SIGTERM/SIGINT and drains. Everything else lives in broker_core.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>

#include "broker/broker_server.h"
#include "broker/observability/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"refbroker — durable referral and result broker of a county medical community"};
  std::string config_path;
  std::string listen, data, port_file, metrics_listen, log_level;
  app.add_option("-c,--config", config_path, "TOML config file (deploy/refbroker.toml)")
      ->required();
  app.add_option("--listen", listen, "override server.listen (host:port, port 0 = any)");
  app.add_option("--data", data, "override storage.path (SQLite database file)");
  app.add_option("--port-file", port_file,
                 "write '<grpc port> <metrics port> <status port>' to this file once listening");
  app.add_option("--metrics-listen", metrics_listen, "override server.metrics_listen");
  std::string status_listen;
  app.add_option("--status-listen", status_listen, "override server.status_listen");
  app.add_option("--log-level", log_level, "override log.level");
  CLI11_PARSE(app, argc, argv);

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
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait(
      [&](const boost::system::error_code&, int sig) { spdlog::info("signal {} received", sig); });
  io.run();
  (*server)->Shutdown();
  server->reset();
  return 0;
}
