#pragma once
// DeliverySink: where a Subscription's deliveries go (the gRPC stream, in production).
// Implementations must be thread-safe and must never block.

#include "absl/status/status.h"
#include "refbroker/v1/delivery.pb.h"

namespace refbroker::delivery {

class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  // Queues one delivery for sending, in call order.
  virtual void Send(refbroker::v1::Delivery delivery) = 0;
  // Ends the stream with `status` (after the deliveries already queued).
  virtual void Fail(const absl::Status& status) = 0;
};

}  // namespace refbroker::delivery
