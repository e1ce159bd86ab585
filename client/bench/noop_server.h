#pragma once
// NoopServer: the gRPC limit. The same ReferralService, the same mutual TLS as refbroker (the
// broker's certificate, client certificates required and verified against the same CA), the
// same callback API; it accepts every submission and discards it at once. Driving it exactly
// as the broker is driven measures what gRPC, TLS and protobuf cost on this machine, so the
// broker's figures can be given as a share of it.
//
// With the relay on, it also serves DeliveryService.Subscribe: each submission is handed at
// once to the open Subscribe stream as a Delivery, sent within the stream's window and acked
// by the subscriber, still with nothing stored. Driven like the broker's pipelined mode (the
// hospital subscribed and acking), it measures what the broker's end-to-end path costs in
// gRPC, TLS and protobuf alone: three messages a referral (submit, delivery, ack) instead of
// the plain no-op stream's one.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace refbench {

class NoopServer {
 public:
  // Listens on 127.0.0.1 (a free port) with DIR/ca.crt, DIR/broker.crt and DIR/broker.key.
  static absl::StatusOr<std::unique_ptr<NoopServer>> Start(const std::string& certs_dir);
  ~NoopServer();

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Relay each submission to the Subscribe stream (on), or discard it (off, the default;
  // turning it off drops what waits).
  void set_relay(bool on);

 private:
  NoopServer() = default;
  class Service;
  class Delivery;
  std::unique_ptr<Service> service_;
  std::unique_ptr<Delivery> delivery_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace refbench
