#pragma once
// ConsultSessions: the live sessions of consult threads. Each Session stream joins one consult
// as one of its parties; every thread message stored for that consult (through the stream or
// PostMessage) is written at once to every stream joined to it, the author's included (that is
// the author's confirmation, with the message's id and seq). Queues still carry each message
// to the other party, so nothing depends on a session being open. Thread-safe.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "refbroker/v1/consult.pb.h"

namespace refbroker::api {

class ConsultSessions {
 public:
  using Writer = std::function<void(const refbroker::v1::ConsultMessage&)>;
  using Closer = std::function<void()>;

  struct Member {
    Writer write;
    Closer close;  // ends the stream (broker shutdown)
  };

  // Joined while it lives.
  class Membership {
   public:
    Membership(ConsultSessions& sessions, std::string consult_id, uint64_t id)
        : sessions_(sessions), consult_id_(std::move(consult_id)), id_(id) {}
    ~Membership() { sessions_.Leave(consult_id_, id_); }
    Membership(const Membership&) = delete;
    Membership& operator=(const Membership&) = delete;

   private:
    ConsultSessions& sessions_;
    const std::string consult_id_;
    const uint64_t id_;
  };

  std::unique_ptr<Membership> Join(const std::string& consult_id, Member member);
  // A message was stored: write it to every member of its consult.
  void Publish(const refbroker::v1::ConsultMessage& message);
  // Ends every session (shutdown).
  void CloseAll();
  size_t size() const;

 private:
  void Leave(const std::string& consult_id, uint64_t id);

  struct Entry {
    uint64_t id;
    Member member;
  };
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::map<std::string, std::vector<Entry>> by_consult_;  // guarded by mu_
};

}  // namespace refbroker::api
