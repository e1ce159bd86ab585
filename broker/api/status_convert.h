#pragma once
// The one place where absl::Status becomes grpc::Status (the numeric codes are the same).

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace refbroker::api {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace refbroker::api
