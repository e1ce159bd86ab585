#pragma once
// IdleSubscribers: many Subscribe streams held open on a queue nothing arrives on, as a county
// with hundreds of connected systems has (each its own consumer group), to measure what an idle
// subscriber costs the broker (memory) and whether an active one notices them (latency). All
// streams share one channel and the gRPC callback API: no thread per stream.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/refclient/connection.h"
#include "refbroker/v1/delivery.grpc.pb.h"

namespace refbench {

class IdleSubscribers {
 public:
  // Opens `count` streams as the connection's principal on `owner`'s `kind` queue, groups
  // "<group_prefix>-0", "-1", ...; returns once every stream has been started.
  IdleSubscribers(refclient::Connection& connection, const std::string& owner,
                  refbroker::v1::QueueKind kind, const std::string& group_prefix, int count);
  ~IdleSubscribers();  // cancels every stream and waits for them to end

  // Streams that ended early (an error) so far, and the first error.
  int failed() const;
  absl::Status first_error() const;

 private:
  class Stream;
  std::unique_ptr<refbroker::v1::DeliveryService::Stub> stub_;
  std::vector<std::unique_ptr<Stream>> streams_;
};

}  // namespace refbench
