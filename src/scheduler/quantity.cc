#include "scheduler/quantity.h"

#include <array>
#include <cctype>
#include <limits>
#include <utility>

namespace gpuslice::scheduler {
namespace {

constexpr std::string_view kAccepted =
    "a number with an optional fraction and one suffix: Ki Mi Gi Ti Pi Ei, n u m k M G T P E, "
    "or an exponent like e3";

struct Suffix {
  std::string_view text;
  int base;  // 2 or 10
  int exponent;
};

constexpr std::array<Suffix, 15> kSuffixes{{{"Ki", 2, 10},
                                            {"Mi", 2, 20},
                                            {"Gi", 2, 30},
                                            {"Ti", 2, 40},
                                            {"Pi", 2, 50},
                                            {"Ei", 2, 60},
                                            {"n", 10, -9},
                                            {"u", 10, -6},
                                            {"m", 10, -3},
                                            {"", 10, 0},
                                            {"k", 10, 3},
                                            {"M", 10, 6},
                                            {"G", 10, 9},
                                            {"T", 10, 12},
                                            {"P", 10, 15}}};

Status Bad(std::string_view text, std::string_view why) {
  return InvalidArgument("quantity '" + std::string(text) + "': " + std::string(why) +
                         "; accepted: " + std::string(kAccepted));
}

// Parses the suffix into (base, exponent).
Result<std::pair<int, int>> ParseSuffix(std::string_view whole, std::string_view suffix) {
  if (suffix == "E") return std::pair{10, 18};
  for (const Suffix& s : kSuffixes) {
    if (s.text == suffix) return std::pair{s.base, s.exponent};
  }
  if (suffix.size() >= 2 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    std::string_view digits = suffix.substr(1);
    bool negative = false;
    if (digits[0] == '+' || digits[0] == '-') {
      negative = digits[0] == '-';
      digits.remove_prefix(1);
    }
    if (digits.empty() || digits.size() > 3) return Bad(whole, "bad exponent");
    int value = 0;
    for (const char c : digits) {
      if (std::isdigit(static_cast<unsigned char>(c)) == 0) return Bad(whole, "bad exponent");
      value = value * 10 + (c - '0');
    }
    return std::pair{10, negative ? -value : value};
  }
  return Bad(whole, "unknown suffix '" + std::string(suffix) + "'");
}

}  // namespace

Result<std::int64_t> ParseQuantity(std::string_view text) {
  if (text.empty()) return Bad(text, "empty");
  if (text.size() > 64) return Bad(text.substr(0, 64), "longer than 64 characters");
  std::size_t pos = 0;
  bool negative = false;
  if (text[0] == '+' || text[0] == '-') {
    negative = text[0] == '-';
    ++pos;
  }
  // The number as an exact integer `mantissa` times 10^-fraction_digits.
  __extension__ using Wide = unsigned __int128;
  Wide mantissa = 0;
  int fraction_digits = 0;
  int digits = 0;
  bool in_fraction = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (c == '.' && !in_fraction) {
      in_fraction = true;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) == 0) break;
    if (++digits > 20) return Bad(text, "more than 20 digits");
    mantissa = mantissa * 10 + static_cast<Wide>(c - '0');
    if (in_fraction) ++fraction_digits;
  }
  if (digits == 0) return Bad(text, "no digits");
  GPUSLICE_ASSIGN_OR_RETURN(const auto suffix, ParseSuffix(text, text.substr(pos)));
  // value = mantissa * base^exp / 10^fraction_digits, rounded up. mantissa < 10^20 < 2^67, so
  // every product below stays within 128 bits.
  constexpr Wide kLimit = static_cast<Wide>(std::numeric_limits<std::int64_t>::max());
  Wide numerator = mantissa;
  Wide denominator = 1;
  int power_of_ten = -fraction_digits;
  if (suffix.first == 2) {
    numerator <<= static_cast<unsigned>(suffix.second);  // <= 2^60
  } else {
    power_of_ten += suffix.second;
  }
  if (power_of_ten > 0) {
    for (int i = 0; i < power_of_ten; ++i) {
      numerator *= 10;
      if (numerator / denominator > kLimit * 1024) return Bad(text, "too large (beyond 2^63-1)");
    }
  } else if (power_of_ten < -20) {
    numerator = mantissa == 0 ? 0 : 1;  // below one unit: rounds up to 1
  } else {
    for (int i = 0; i < -power_of_ten; ++i) denominator *= 10;
  }
  const Wide value = numerator / denominator + (numerator % denominator != 0 ? 1 : 0);
  if (value > kLimit) return Bad(text, "too large (beyond 2^63-1)");
  const auto result = static_cast<std::int64_t>(value);
  return negative ? -result : result;
}

std::string FormatBytes(std::int64_t bytes) {
  static constexpr std::array<std::string_view, 6> kUnits{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  if (bytes == 0) return "0";
  std::int64_t value = bytes;
  std::string_view unit;
  for (const std::string_view u : kUnits) {
    if (value % 1024 != 0) break;
    value /= 1024;
    unit = u;
  }
  return std::to_string(value) + std::string(unit);
}

}  // namespace gpuslice::scheduler
