#include "fake_apiserver/selectors.h"

namespace gpuslice::fake {
namespace {

std::string Trim(std::string_view text) {
  const size_t start = text.find_first_not_of(' ');
  if (start == std::string_view::npos) return "";
  const size_t end = text.find_last_not_of(' ');
  return std::string(text.substr(start, end - start + 1));
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> SplitTopLevel(std::string_view text) {
  std::vector<std::string> parts;
  int depth = 0;
  std::string current;
  for (const char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(Trim(current));
      current.clear();
    } else {
      current += c;
    }
  }
  if (!Trim(current).empty() || !parts.empty()) parts.push_back(Trim(current));
  return parts;
}

std::vector<std::string> SplitSet(std::string_view inside) {
  std::vector<std::string> values;
  size_t start = 0;
  while (start <= inside.size()) {
    const size_t comma = inside.find(',', start);
    values.push_back(Trim(inside.substr(start, comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return values;
}

Status BadRequirement(std::string_view text, std::string_view why) {
  return InvalidArgument("unable to parse requirement '" + std::string(text) +
                         "': " + std::string(why));
}

const nlohmann::json* Lookup(const nlohmann::json& object, const std::vector<std::string>& path) {
  const nlohmann::json* node = &object;
  for (const std::string& part : path) {
    if (!node->is_object()) return nullptr;
    const auto it = node->find(part);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

std::string AsText(const nlohmann::json* value) {
  if (value == nullptr || value->is_null()) return "";
  if (value->is_string()) return value->get<std::string>();
  return value->dump();
}

}  // namespace

Result<LabelSelector> LabelSelector::Parse(std::string_view text) {
  LabelSelector selector;
  for (const std::string& part : SplitTopLevel(text)) {
    if (part.empty()) return BadRequirement(text, "empty requirement");
    Requirement r;
    const size_t paren = part.find('(');
    if (paren != std::string::npos) {
      if (part.back() != ')') return BadRequirement(part, "missing ')'");
      std::string head = Trim(part.substr(0, paren));
      const size_t space = head.rfind(' ');
      if (space == std::string::npos) return BadRequirement(part, "expected 'in' or 'notin'");
      const std::string op = head.substr(space + 1);
      if (op != "in" && op != "notin") return BadRequirement(part, "expected 'in' or 'notin'");
      r.key = Trim(head.substr(0, space));
      r.op = op == "in" ? Op::kIn : Op::kNotIn;
      r.values = SplitSet(std::string_view(part).substr(paren + 1, part.size() - paren - 2));
    } else if (const size_t ne = part.find("!="); ne != std::string::npos) {
      r = {Trim(part.substr(0, ne)), Op::kNotEquals, {Trim(part.substr(ne + 2))}};
    } else if (const size_t eq = part.find('='); eq != std::string::npos) {
      const size_t value_at = part.compare(eq, 2, "==") == 0 ? eq + 2 : eq + 1;
      r = {Trim(part.substr(0, eq)), Op::kEquals, {Trim(part.substr(value_at))}};
    } else if (part.front() == '!') {
      r = {Trim(part.substr(1)), Op::kNotExists, {}};
    } else {
      r = {part, Op::kExists, {}};
    }
    if (r.key.empty() || r.key.find_first_of(" !=()") != std::string::npos)
      return BadRequirement(part, "invalid label key");
    selector.requirements_.push_back(std::move(r));
  }
  return selector;
}

bool LabelSelector::Matches(const nlohmann::json& object) const {
  const nlohmann::json* labels = Lookup(object, {"metadata", "labels"});
  for (const Requirement& r : requirements_) {
    const nlohmann::json* value =
        labels != nullptr && labels->is_object() && labels->contains(r.key) ? &(*labels)[r.key]
                                                                            : nullptr;
    const std::string text = AsText(value);
    const bool in_set = std::find(r.values.begin(), r.values.end(), text) != r.values.end();
    bool ok = false;
    switch (r.op) {
      case Op::kExists:
        ok = value != nullptr;
        break;
      case Op::kNotExists:
        ok = value == nullptr;
        break;
      case Op::kEquals:
        ok = value != nullptr && text == r.values[0];
        break;
      case Op::kNotEquals:
        ok = value == nullptr || text != r.values[0];
        break;
      case Op::kIn:
        ok = value != nullptr && in_set;
        break;
      case Op::kNotIn:
        ok = value == nullptr || !in_set;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

Result<FieldSelector> FieldSelector::Parse(std::string_view text) {
  FieldSelector selector;
  for (const std::string& part : SplitTopLevel(text)) {
    Requirement r;
    size_t op = part.find("!=");
    size_t value_at = op + 2;
    r.equals = op == std::string::npos;
    if (r.equals) {
      op = part.find('=');
      if (op == std::string::npos) return BadRequirement(part, "expected '=', '==' or '!='");
      value_at = part.compare(op, 2, "==") == 0 ? op + 2 : op + 1;
    }
    const std::string field = Trim(part.substr(0, op));
    if (field.empty()) return BadRequirement(part, "empty field name");
    for (size_t start = 0; start <= field.size();) {
      const size_t dot = field.find('.', start);
      r.path.push_back(field.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    r.value = Trim(part.substr(value_at));
    selector.requirements_.push_back(std::move(r));
  }
  return selector;
}

bool FieldSelector::Matches(const nlohmann::json& object) const {
  for (const Requirement& r : requirements_) {
    const bool equal = AsText(Lookup(object, r.path)) == r.value;
    if (equal != r.equals) return false;
  }
  return true;
}

}  // namespace gpuslice::fake
