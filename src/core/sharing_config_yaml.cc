#include "core/sharing_config_yaml.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include "core/resource_names.h"

namespace gpuslice::sharing_config_internal {
namespace {

constexpr std::size_t kMaxQuotedLength = 128;       // longest scalar quoted back in a message
constexpr std::size_t kMaxResourceNameLength = 63;  // NVIDIA's MaxResourceNameLength

// Quotes `text` for a message: escapes quotes and control bytes, shortens long values.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  const std::size_t shown = std::min(text.size(), kMaxQuotedLength);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (shown < text.size()) out += "...";
  out += '"';
  return out;
}

// yaml-cpp tags plain (unquoted) scalars "?" and quoted ones "!".
bool IsPlainScalar(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "?"; }

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

// The UUID forms google/uuid.Parse accepts that appear in practice: 8-4-4-4-12 hex, or 32 hex.
bool IsUuid(std::string_view s) {
  if (s.size() == 32) return IsHex(s);
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !IsHex(s.substr(i, 1))) return false;
  }
  return true;
}

// "007" -> "7"; "0" stays "0".
std::string CanonicalIndex(std::string_view digits) {
  const std::size_t first = digits.find_first_not_of('0');
  return first == std::string_view::npos ? "0" : std::string(digits.substr(first));
}

std::optional<std::int64_t> ParseDecimal(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (!IsDigits(text)) return std::nullopt;
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return negative ? -value : value;
}

bool IsBoolWord(std::string_view s, bool* value) {
  static constexpr std::array<std::string_view, 11> kTrue = {
      "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"};
  static constexpr std::array<std::string_view, 11> kFalse = {
      "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"};
  if (std::find(kTrue.begin(), kTrue.end(), s) != kTrue.end()) {
    *value = true;
    return true;
  }
  if (std::find(kFalse.begin(), kFalse.end(), s) != kFalse.end()) {
    *value = false;
    return true;
  }
  return false;
}

// A DNS-1123 subdomain, as Kubernetes requires after the resource-name prefix.
bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) dot = s.size();
    const std::string_view label = s.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!alnum(label.front()) || !alnum(label.back())) return false;
    if (!std::all_of(label.begin(), label.end(), [&](char c) { return alnum(c) || c == '-'; })) {
      return false;
    }
    start = dot + 1;
  }
  return true;
}

// A number followed by `suffix`, e.g. ("3g", "g") -> true.
bool IsCountWithSuffix(std::string_view token, std::string_view suffix) {
  if (token.size() <= suffix.size() || !token.ends_with(suffix)) return false;
  return IsDigits(token.substr(0, token.size() - suffix.size()));
}

bool IsGoDuration(std::string_view s) {
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) s.remove_prefix(1);
  if (s == "0") return true;
  if (s.empty()) return false;
  static constexpr std::array<std::string_view, 8> kUnits = {"ns", "us", "\xc2\xb5s", "\xce\xbcs",
                                                             "ms", "s",  "m",         "h"};
  while (!s.empty()) {
    std::size_t i = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, digits = true;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, digits = true;
    }
    if (!digits) return false;
    s.remove_prefix(i);
    std::string_view best;
    for (std::string_view unit : kUnits) {
      if (s.starts_with(unit) && unit.size() > best.size()) best = unit;
    }
    if (best.empty()) return false;
    s.remove_prefix(best.size());
  }
  return true;
}

}  // namespace

int LineOf(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  const YAML::Mark mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

std::string Describe(const YAML::Node& node) {
  if (!node.IsDefined()) return "nothing";
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string JoinPath(std::string_view path, std::string_view field) {
  if (path.empty()) return std::string(field);
  std::string out(path);
  out += '.';
  out += field;
  return out;
}

std::string IndexPath(std::string_view path, std::size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

std::string JoinAccepted(const std::vector<std::string_view>& values) {
  std::string out;
  for (std::string_view v : values) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

Status ErrorSink::At(int line, std::string_view path, std::string_view message) const {
  std::string out(source_);
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!path.empty()) {
    out += path;
    out += ": ";
  }
  out += message;
  return InvalidArgument(std::move(out));
}

namespace {

// Records where each document starts and whether it has any content; builds no nodes.
class DocumentScanner : public YAML::EventHandler {
 public:
  struct Document {
    YAML::Mark start;
    bool has_content = false;
  };
  std::vector<Document> documents;

  void OnDocumentStart(const YAML::Mark& mark) override { documents.push_back({mark, false}); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { MarkContent(); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    MarkContent();
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    MarkContent();
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    MarkContent();
  }
  void OnMapEnd() override {}

 private:
  void MarkContent() {
    if (!documents.empty()) documents.back().has_content = true;
  }
};

}  // namespace

Status CheckText(const ErrorSink& errors, std::string_view text) {
  int line = 1;
  int column = 1;
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  auto bad = [&](std::string_view what, unsigned char b) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex = "0x";
    hex += kHex[b >> 4];
    hex += kHex[b & 0xf];
    return errors.At(line, "",
                     "the configuration must be UTF-8 text; found " + std::string(what) + " " +
                         hex + " at column " + std::to_string(column));
  };
  // A UTF-8 byte order mark is allowed at the start.
  if (text.starts_with("\xef\xbb\xbf")) i = 3;
  while (i < text.size()) {
    const unsigned char b = byte(i);
    if (b < 0x80) {
      if (b == '\n') {
        ++line;
        column = 1;
      } else {
        if ((b < 0x20 && b != '\t' && b != '\r') || b == 0x7f) return bad("control character", b);
        ++column;
      }
      ++i;
      continue;
    }
    // Multi-byte sequence: length from the lead byte, then continuation bytes; no overlong forms,
    // no surrogates, nothing above U+10FFFF.
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (b >= 0xc2 && b <= 0xdf) {
      length = 2;
      code = b & 0x1fu;
    } else if (b >= 0xe0 && b <= 0xef) {
      length = 3;
      code = b & 0x0fu;
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4;
      code = b & 0x07u;
    } else {
      return bad("invalid byte", b);
    }
    if (i + length > text.size()) return bad("truncated sequence starting with", b);
    for (std::size_t k = 1; k < length; ++k) {
      const unsigned char c = byte(i + k);
      if ((c & 0xc0u) != 0x80u) return bad("invalid sequence starting with", b);
      code = (code << 6) | (c & 0x3fu);
    }
    const bool overlong = (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
    if (overlong || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) {
      return bad("invalid sequence starting with", b);
    }
    i += length;
    ++column;
  }
  return Status::Ok();
}

Result<YAML::Node> LoadSingleDocument(const ErrorSink& errors, const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentScanner scanner;
  while (parser.HandleNextDocument(scanner)) {
    const std::size_t n = scanner.documents.size();
    // yaml-cpp 0.7 reports a document without consuming input when a stray flow token (",")
    // follows one; without this check the loop would never end.
    if (n >= 2 && scanner.documents[n - 1].start.pos == scanner.documents[n - 2].start.pos) {
      const YAML::Mark& at = scanner.documents[n - 1].start;
      return errors.At(at.line + 1, "",
                       "YAML syntax error: unexpected text after the document, at column " +
                           std::to_string(at.column + 1));
    }
  }
  std::vector<DocumentScanner::Document>& docs = scanner.documents;
  while (!docs.empty() && !docs.back().has_content) docs.pop_back();
  if (docs.empty()) {
    return errors.At(0, "", "the configuration is empty; it needs at least \"version: v1\"");
  }
  if (docs.size() > 1) {
    return errors.At(docs[1].start.line + 1, "",
                     "found " + std::to_string(docs.size()) +
                         " YAML documents; a configuration is a single document");
  }
  return YAML::Load(text);
}

Result<StrictMap> StrictMap::Read(const ErrorSink& errors, const YAML::Node& node, std::string path,
                                  const std::vector<std::string_view>& accepted) {
  if (!node.IsMap()) {
    return errors.At(
        node, path,
        "must be a map of fields (" + JoinAccepted(accepted) + "), got " + Describe(node));
  }
  StrictMap map;
  map.node_ = node;
  map.path_ = std::move(path);
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      return errors.At(key, map.path_, "field names must be strings, got " + Describe(key));
    }
    const std::string& name = key.Scalar();
    if (std::find(accepted.begin(), accepted.end(), name) == accepted.end()) {
      return errors.At(key, map.path_,
                       "unknown field " + Quote(name) + "; accepted: " + JoinAccepted(accepted));
    }
    if (const Entry* first = map.Find(name)) {
      const int first_line = LineOf(first->key_node);
      return errors.At(key, map.path_,
                       "field " + Quote(name) + " appears twice" +
                           (first_line > 0 ? " (first on line " + std::to_string(first_line) + ")"
                                           : std::string()));
    }
    map.entries_.push_back({name, key, it->second});
  }
  return map;
}

const StrictMap::Entry* StrictMap::Find(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

bool StrictMap::Has(std::string_view key) const {
  const Entry* e = Find(key);
  return e != nullptr && e->value.IsDefined() && !e->value.IsNull();
}

YAML::Node StrictMap::Get(std::string_view key) const {
  const Entry* e = Find(key);
  return e != nullptr ? e->value : YAML::Node();
}

YAML::Node StrictMap::Key(std::string_view key) const {
  const Entry* e = Find(key);
  return e != nullptr ? e->key_node : YAML::Node();
}

Result<bool> ReadBool(const ErrorSink& errors, const YAML::Node& node, std::string_view path) {
  bool value = false;
  if (node.IsScalar() && IsBoolWord(node.Scalar(), &value)) {
    if (IsPlainScalar(node)) return value;
    return errors.At(node, path,
                     "must be true or false, got the quoted string " + Quote(node.Scalar()) +
                         "; remove the quotes");
  }
  return errors.At(node, path, "must be true or false, got " + Describe(node));
}

Result<std::int64_t> ReadInt(const ErrorSink& errors, const YAML::Node& node, std::string_view path,
                             std::int64_t min, std::int64_t max, std::string_view expectation) {
  const std::string must = "must be " + std::string(expectation) + ", got ";
  if (!node.IsScalar()) return errors.At(node, path, must + Describe(node));
  const std::optional<std::int64_t> value = ParseDecimal(node.Scalar());
  if (!value) return errors.At(node, path, must + Describe(node));
  if (!IsPlainScalar(node)) {
    return errors.At(node, path,
                     must + "the quoted string " + Quote(node.Scalar()) + "; remove the quotes");
  }
  if (*value < min || *value > max) return errors.At(node, path, must + Describe(node));
  return *value;
}

Result<std::string> ReadString(const ErrorSink& errors, const YAML::Node& node,
                               std::string_view path) {
  if (!node.IsScalar()) return errors.At(node, path, "must be a string, got " + Describe(node));
  return node.Scalar();
}

Result<std::string> ReadEnum(const ErrorSink& errors, const YAML::Node& node, std::string_view path,
                             const std::vector<std::string_view>& accepted) {
  if (!node.IsScalar()) {
    return errors.At(node, path,
                     "must be one of " + JoinAccepted(accepted) + ", got " + Describe(node));
  }
  const std::string& value = node.Scalar();
  if (std::find(accepted.begin(), accepted.end(), value) == accepted.end()) {
    return errors.At(node, path,
                     "unknown value " + Quote(value) + "; accepted: " + JoinAccepted(accepted));
  }
  return value;
}

Result<std::vector<std::string>> ReadStringOrList(const ErrorSink& errors, const YAML::Node& node,
                                                  std::string_view path) {
  if (node.IsScalar()) return std::vector<std::string>{node.Scalar()};
  if (!node.IsSequence()) {
    return errors.At(node, path, "must be a string or a list of strings, got " + Describe(node));
  }
  std::vector<std::string> out;
  std::size_t i = 0;
  for (auto it = node.begin(); it != node.end(); ++it, ++i) {
    GPUSLICE_ASSIGN_OR_RETURN(std::string item, ReadString(errors, *it, IndexPath(path, i)));
    out.push_back(std::move(item));
  }
  return out;
}

std::string GoDurationString(std::int64_t ns) {
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  const std::uint64_t u =
      ns < 0 ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
  // "<whole>[.<fraction without trailing zeros>]" of u / scale.
  auto fixed = [](std::uint64_t value, std::uint64_t scale, int digits) {
    std::string out = std::to_string(value / scale);
    std::string fraction = std::to_string(value % scale);
    fraction.insert(0, static_cast<std::size_t>(digits) - fraction.size(), '0');
    while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
    return fraction.empty() ? out : out + "." + fraction;
  };
  if (u < 1000) return sign + std::to_string(u) + "ns";
  if (u < 1000000) return sign + fixed(u, 1000, 3) + "\xc2\xb5s";
  if (u < 1000000000) return sign + fixed(u, 1000000, 6) + "ms";
  const std::uint64_t hours = u / 3600000000000ULL;
  const std::uint64_t minutes = u / 60000000000ULL % 60;
  const std::string seconds = fixed(u % 60000000000ULL, 1000000000, 9) + "s";
  if (hours > 0)
    return sign + std::to_string(hours) + "h" + std::to_string(minutes) + "m" + seconds;
  if (minutes > 0) return sign + std::to_string(minutes) + "m" + seconds;
  return sign + seconds;
}

Result<std::string> ReadDuration(const ErrorSink& errors, const YAML::Node& node,
                                 std::string_view path) {
  // As NVIDIA's Duration: a bare number is nanoseconds, "infinite" means never again, anything
  // else is a Go duration string.
  if (node.IsScalar() && IsPlainScalar(node)) {
    if (const std::optional<std::int64_t> ns = ParseDecimal(node.Scalar())) {
      return GoDurationString(*ns);
    }
  }
  GPUSLICE_ASSIGN_OR_RETURN(std::string value, ReadString(errors, node, path));
  if (value == "infinite") return value;
  if (!IsGoDuration(value)) {
    return errors.At(node, path,
                     "not a duration: " + Quote(value) +
                         "; write a number and a unit (ns, us, ms, s, m, h), e.g. \"60s\" or "
                         "\"1m30s\", a number of nanoseconds, or \"infinite\"");
  }
  return value;
}

bool IsGpuIndex(std::string_view ref) { return IsDigits(ref); }

bool IsMigIndex(std::string_view ref) {
  const std::size_t colon = ref.find(':');
  if (colon == std::string_view::npos) return false;
  return IsDigits(ref.substr(0, colon)) && IsDigits(ref.substr(colon + 1));
}

bool IsGpuUuid(std::string_view ref) { return ref.starts_with("GPU-") && IsUuid(ref.substr(4)); }

bool IsMigUuid(std::string_view ref) {
  if (!ref.starts_with("MIG-")) return false;
  const std::string_view suffix = ref.substr(4);
  if (IsUuid(suffix)) return true;
  // MIG-GPU-<uuid>/<gi>/<ci>
  const std::size_t first = suffix.find('/');
  if (first == std::string_view::npos) return false;
  const std::size_t second = suffix.find('/', first + 1);
  if (second == std::string_view::npos) return false;
  return IsGpuUuid(suffix.substr(0, first)) &&
         IsDigits(suffix.substr(first + 1, second - first - 1)) &&
         IsDigits(suffix.substr(second + 1));
}

bool IsMigRef(std::string_view ref) { return IsMigIndex(ref) || IsMigUuid(ref); }

Result<DeviceSelector> ReadDeviceSelector(const ErrorSink& errors, const YAML::Node& node,
                                          std::string_view path) {
  static const std::string kAccepted =
      "accepted: \"all\", a count > 0, or a list of GPU indices (0), MIG indices (\"0:1\"), "
      "GPU UUIDs (\"GPU-<uuid>\") or MIG UUIDs (\"MIG-<uuid>\")";
  DeviceSelector selector;
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    if (text == "all") return DeviceSelector::All();
    const std::optional<std::int64_t> count = ParseDecimal(text);
    if (count && IsPlainScalar(node)) {
      if (*count <= 0) {
        return errors.At(node, path, "a count of devices must be > 0, got " + Quote(text));
      }
      if (*count > std::numeric_limits<int>::max()) {
        return errors.At(node, path,
                         "a count of devices must be at most 2147483647, got " + Quote(text));
      }
      selector.kind = DeviceSelector::Kind::kCount;
      selector.count = static_cast<int>(*count);
      return selector;
    }
    return errors.At(node, path, "unknown value " + Quote(text) + "; " + kAccepted);
  }
  if (!node.IsSequence()) return errors.At(node, path, "got " + Describe(node) + "; " + kAccepted);
  if (node.size() == 0) {
    return errors.At(node, path, "an empty list selects no device; " + kAccepted);
  }
  selector.kind = DeviceSelector::Kind::kList;
  std::set<std::string> seen;
  std::size_t i = 0;
  for (auto it = node.begin(); it != node.end(); ++it, ++i) {
    const YAML::Node item = *it;
    const std::string item_path = IndexPath(path, i);
    if (!item.IsScalar()) {
      return errors.At(item, item_path, "must be a device reference, got " + Describe(item));
    }
    std::string ref = item.Scalar();
    if (IsGpuIndex(ref)) {
      ref = CanonicalIndex(ref);
    } else if (IsMigIndex(ref)) {
      const std::size_t colon = ref.find(':');
      ref = CanonicalIndex(std::string_view(ref).substr(0, colon)) + ":" +
            CanonicalIndex(std::string_view(ref).substr(colon + 1));
    } else if (!IsGpuUuid(ref) && !IsMigUuid(ref)) {
      return errors.At(item, item_path,
                       "not a GPU index, MIG index (\"<gpu>:<mig>\"), GPU UUID (\"GPU-<uuid>\") or "
                       "MIG UUID (\"MIG-<uuid>\"): " +
                           Quote(item.Scalar()));
    }
    if (!seen.insert(ref).second) {
      return errors.At(item, item_path, "device " + Quote(ref) + " is listed twice");
    }
    selector.ids.push_back(std::move(ref));
  }
  return selector;
}

Result<std::string> ReadResourceName(const ErrorSink& errors, const YAML::Node& node,
                                     std::string_view path) {
  GPUSLICE_ASSIGN_OR_RETURN(std::string name, ReadString(errors, node, path));
  const std::string_view prefix = names::kNvidiaPrefix;  // "nvidia.com/"
  if (name.find('/') != std::string::npos && !name.starts_with(prefix)) {
    return errors.At(node, path,
                     "resource name " + Quote(name) +
                         " must start with \"nvidia.com/\" or have "
                         "no prefix (\"gpu\" means \"nvidia.com/gpu\")");
  }
  std::string full = name.starts_with(prefix) ? name : std::string(prefix) + name;
  const std::string_view local = std::string_view(full).substr(prefix.size());
  if (!IsDnsSubdomain(local)) {
    return errors.At(
        node, path,
        "invalid resource name " + Quote(name) +
            ": after \"nvidia.com/\" it must be "
            "lowercase letters, digits, '-' and '.', starting and ending with a letter or "
            "digit");
  }
  if (full.size() > kMaxResourceNameLength) {
    return errors.At(node, path, "resource name " + Quote(full) + " is longer than 63 characters");
  }
  return full;
}

bool IsMigProfile(std::string_view profile) {
  std::vector<std::string_view> tokens;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = profile.find('.', start);
    tokens.push_back(profile.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  std::size_t i = 0;
  if (i < tokens.size() && IsCountWithSuffix(tokens[i], "c")) ++i;  // compute-instance part
  if (i >= tokens.size() || !IsCountWithSuffix(tokens[i], "g")) return false;
  ++i;
  if (i >= tokens.size() || !IsCountWithSuffix(tokens[i], "gb")) return false;
  ++i;
  // Attributes, as NVIDIA writes "+me", "+me.all" and "+gfx" in resource names (".me", ...).
  // Nothing else: "mig-1g.5gb.shared" is a renamed resource, not a profile.
  for (; i < tokens.size(); ++i) {
    const std::string_view t = tokens[i];
    if (t != "me" && t != "all" && t != "gfx") return false;
  }
  return true;
}

}  // namespace gpuslice::sharing_config_internal
