#include "broker/api/consult_sessions.h"

#include <algorithm>

namespace refbroker::api {

std::unique_ptr<ConsultSessions::Membership> ConsultSessions::Join(const std::string& consult_id,
                                                                   Member member) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  by_consult_[consult_id].push_back({id, std::move(member)});
  return std::make_unique<Membership>(*this, consult_id, id);
}

void ConsultSessions::Leave(const std::string& consult_id, uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_consult_.find(consult_id);
  if (it == by_consult_.end()) return;
  auto& v = it->second;
  v.erase(std::remove_if(v.begin(), v.end(), [id](const Entry& e) { return e.id == id; }), v.end());
  if (v.empty()) by_consult_.erase(it);
}

void ConsultSessions::Publish(const refbroker::v1::ConsultMessage& message) {
  std::vector<Writer> writers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_consult_.find(message.consult_id());
    if (it == by_consult_.end()) return;
    for (const Entry& e : it->second) writers.push_back(e.member.write);
  }
  for (const Writer& w : writers) w(message);  // outside the lock: a writer may take its own
}

void ConsultSessions::CloseAll() {
  std::vector<Closer> closers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [consult, entries] : by_consult_) {
      for (const Entry& e : entries) closers.push_back(e.member.close);
    }
  }
  for (const Closer& c : closers) c();
}

size_t ConsultSessions::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [consult, entries] : by_consult_) n += entries.size();
  return n;
}

}  // namespace refbroker::api
