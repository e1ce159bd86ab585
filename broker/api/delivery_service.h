#pragma once
// gRPC adapter for refbroker.v1.DeliveryService: one ServerBidiReactor per Subscribe stream,
// bridging the stream to a delivery::Subscription.

#include "broker/api/service_context.h"
#include "refbroker/v1/delivery.grpc.pb.h"

namespace refbroker::api {

class DeliveryServiceImpl final : public refbroker::v1::DeliveryService::CallbackService {
 public:
  explicit DeliveryServiceImpl(ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerBidiReactor<refbroker::v1::SubscribeRequest, refbroker::v1::Delivery>* Subscribe(
      grpc::CallbackServerContext* context) override;

 private:
  ServiceContext& ctx_;
};

}  // namespace refbroker::api
