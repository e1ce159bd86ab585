#include "broker/audit/audit_trail.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/domain/patient_key.h"
#include "broker/storage/audit_chain.h"

namespace refbroker::audit {
namespace {

using google::protobuf::util::TimeUtil;
namespace v1 = refbroker::v1;

absl::Status RequireAuditor(const auth::Principal& caller) {
  if (caller.role != auth::Role::kAuditor) {
    return absl::PermissionDeniedError(
        absl::StrCat("caller: ", caller.id,
                     " is not an auditor; only auditors read the audit "
                     "trail"));
  }
  return absl::OkStatus();
}

absl::Status WriteAllAndSync(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return absl::InternalError(absl::StrCat("audit archive: cannot create ", path));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("audit archive: write failed: ", path));
    }
    done += static_cast<size_t>(n);
  }
  bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return absl::InternalError(absl::StrCat("audit archive: fsync failed: ", path));
  return absl::OkStatus();
}

}  // namespace

v1::AuditEntry ToProto(const storage::AuditRow& row) {
  v1::AuditEntry e;
  e.set_seq(row.seq);
  *e.mutable_at() = TimeUtil::MicrosecondsToTimestamp(row.at);
  e.set_actor(row.actor);
  e.set_alliance(row.alliance);
  e.set_action(row.action);
  e.set_subject(row.subject);
  e.set_patient_key(row.patient_key);
  e.set_peer(row.peer);
  e.set_outcome(row.outcome);
  e.set_prev_hash(row.prev_hash);
  e.set_hash(row.hash);
  return e;
}

absl::StatusOr<v1::VerifyAuditResponse> AuditTrail::Verify(const auth::Principal& caller) {
  RETURN_IF_ERROR(RequireAuditor(caller));
  ASSIGN_OR_RETURN(storage::AuditAnchor anchor, store_.GetAuditAnchor());
  v1::VerifyAuditResponse out;
  out.set_archived_upto_seq(anchor.upto_seq);
  out.set_archive_file(anchor.file);
  uint64_t expect_seq = anchor.upto_seq + 1;
  std::string prev = anchor.last_hash;
  storage::AuditQuery q;
  q.after_seq = anchor.upto_seq;
  q.limit = 5000;
  auto broken = [&out](uint64_t seq, std::string problem) {
    out.set_ok(false);
    out.set_first_broken_seq(seq);
    out.set_problem(std::move(problem));
    return out;
  };
  for (;;) {
    ASSIGN_OR_RETURN(auto rows, store_.ListAudit(q));
    if (rows.empty()) break;
    for (const storage::AuditRow& row : rows) {
      if (out.first_seq() == 0) out.set_first_seq(row.seq);
      if (row.seq != expect_seq) {
        return broken(expect_seq, absl::StrCat("entry ", expect_seq,
                                               " is missing (the next "
                                               "entry kept is ",
                                               row.seq, ")"));
      }
      if (row.prev_hash != prev) {
        return broken(row.seq, "its prev_hash does not match the hash of the entry before it");
      }
      if (storage::AuditChainHash(prev, row) != row.hash) {
        return broken(row.seq, "its content does not match its hash (the entry was altered)");
      }
      prev = row.hash;
      ++expect_seq;
      out.set_checked(out.checked() + 1);
      out.set_last_seq(row.seq);
    }
    q.after_seq = rows.back().seq;
  }
  out.set_ok(true);
  out.set_head_hash(prev);
  return out;
}

absl::StatusOr<v1::SearchAuditResponse> AuditTrail::Search(const auth::Principal& caller,
                                                           const v1::SearchAuditRequest& req) {
  RETURN_IF_ERROR(RequireAuditor(caller));
  if (req.limit() > 1000) return absl::InvalidArgumentError("limit: at most 1000");
  storage::AuditQuery q;
  if (req.has_patient()) {
    if (req.patient().value().empty()) return absl::InvalidArgumentError("patient.value: required");
    q.patient_key = domain::PatientKey(req.patient());
  }
  q.actor = req.actor();
  q.subject = req.subject();
  if (req.has_from()) q.from = TimeUtil::TimestampToMicroseconds(req.from());
  if (req.has_to()) q.to = TimeUtil::TimestampToMicroseconds(req.to());
  q.after_seq = req.after_seq();
  q.limit = req.limit() == 0 ? 100 : req.limit();
  ASSIGN_OR_RETURN(auto rows, store_.ListAudit(q));
  v1::SearchAuditResponse out;
  for (const storage::AuditRow& row : rows) {
    // The auditor's alliance, and calls nobody could be identified for.
    if (!row.alliance.empty() && row.alliance != caller.alliance) continue;
    *out.add_entries() = ToProto(row);
  }
  return out;
}

absl::StatusOr<std::string> AuditTrail::WriteArchiveFile(
    const std::vector<storage::AuditRow>& rows) {
  std::error_code ec;
  std::filesystem::create_directories(archive_dir_, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("audit archive: ", archive_dir_, ": ", ec.message()));
  std::string data;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  for (const storage::AuditRow& row : rows) {
    std::string line;
    auto s = google::protobuf::util::MessageToJsonString(ToProto(row), &line, options);
    if (!s.ok()) return absl::InternalError("audit archive: cannot encode an entry");
    absl::StrAppend(&data, line, "\n");
  }
  std::string path =
      absl::StrCat(archive_dir_, "/audit-", rows.front().seq, "-", rows.back().seq, ".jsonl");
  RETURN_IF_ERROR(WriteAllAndSync(path, data));
  // The new name must survive a crash too.
  int dir = ::open(archive_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return path;
}

absl::StatusOr<uint64_t> AuditTrail::Archive(Micros cutoff, size_t batch) {
  uint64_t total = 0;
  for (;;) {
    ASSIGN_OR_RETURN(uint64_t n,
                     store_.ArchiveAudit(cutoff, clock_.Now(), batch, [this](const auto& rows) {
                       return WriteArchiveFile(rows);
                     }));
    total += n;
    if (n < batch) break;
  }
  if (total > 0) spdlog::info("audit archived entries={} dir={}", total, archive_dir_);
  return total;
}

}  // namespace refbroker::audit
