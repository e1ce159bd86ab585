#pragma once
// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status(Or). Abseil 20220623 (Debian 12) ships
// no status_macros.h, so these are ours.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define REFBROKER_CONCAT_INNER(a, b) a##b
#define REFBROKER_CONCAT(a, b) REFBROKER_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR_IMPL(tmp, expr) \
  do {                                  \
    ::absl::Status tmp = (expr);        \
    if (!tmp.ok()) return tmp;          \
  } while (0)

// __COUNTER__ keeps nested uses (a lambda inside the argument) from shadowing each other.
#define RETURN_IF_ERROR(expr) \
  RETURN_IF_ERROR_IMPL(REFBROKER_CONCAT(refbroker_status_, __COUNTER__), expr)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(*tmp)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(REFBROKER_CONCAT(refbroker_statusor_, __COUNTER__), lhs, expr)
