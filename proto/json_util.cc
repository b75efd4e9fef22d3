#include "proto/json_util.h"

namespace vrouter::proto::internal {

bool IsValidText(std::string_view text, std::size_t max_bytes) {
  if (text.empty() || text.size() > max_bytes) return false;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

std::string Quote(std::string_view key) { return "'" + std::string(key) + "'"; }

std::optional<DecodeError> Frame::Open(std::string_view text, IdField id_field) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  storage_ = json::parse(text, ec, storage_.storage(), options);
  if (ec) return DecodeError{ErrorCode::kInvalidJson, "invalid JSON: " + ec.message(), {}};
  if (!storage_.is_object()) {
    return DecodeError{ErrorCode::kInvalidMessage, "a message must be a JSON object", {}};
  }
  Envelope& env = envelope_;
  env.object = &storage_.get_object();
  // Read the id first so that every later error can be matched to the request.
  const json::value* id = env.object->if_contains("id");
  if (id_field == IdField::kRequestId && id != nullptr && !id->is_null()) {
    env.id = FieldReader::AsSafeUInt(*id);
    if (!env.id) {
      return DecodeError{
          ErrorCode::kInvalidMessage, "field 'id' must be an integer in [0, 2^53-1]", {}};
    }
  }
  const json::value* type = env.object->if_contains("type");
  if (type == nullptr)
    return DecodeError{ErrorCode::kInvalidMessage, "missing field 'type'", env.id};
  if (!type->is_string()) {
    return DecodeError{ErrorCode::kInvalidMessage, "field 'type' must be a string", env.id};
  }
  env.type = type->get_string();
  return std::nullopt;
}

DecodeError UnknownType(const Envelope& env) {
  std::string shown(env.type.substr(0, 64));
  return DecodeError{ErrorCode::kUnknownType, "unknown message type '" + shown + "'", env.id};
}

bool ReadErrorFields(FieldReader& r, Error& out) {
  std::string code;
  if (r.String("code", code, 64)) {
    if (auto c = ErrorCodeFromName(code)) {
      out.code = *c;
    } else {
      r.Fail("unknown error code '" + code + "'");
    }
  }
  r.String("message", out.message, kMaxTextBytes);
  return r.ok();
}

void PutErrorFields(json::object& o, const Error& m) {
  o["code"] = ErrorCodeName(m.code);
  o["message"] = m.message;
}

void PutId(json::object& o, const RequestId& id) {
  if (id) o["id"] = *id;
}

}  // namespace vrouter::proto::internal

namespace vrouter::proto {

bool IsValidId(std::string_view id) { return internal::IsValidText(id, kMaxIdBytes); }

}  // namespace vrouter::proto
