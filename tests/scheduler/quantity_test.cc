#include "scheduler/quantity.h"

#include <gtest/gtest.h>

namespace gpuslice::scheduler {
namespace {

struct QuantityCase {
  const char* name;
  const char* text;
  std::int64_t value;
};

class QuantityTest : public ::testing::TestWithParam<QuantityCase> {};

TEST_P(QuantityTest, ParsesToTheValueKubernetesGives) {
  const Result<std::int64_t> value = ParseQuantity(GetParam().text);
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(*value, GetParam().value);
}

INSTANTIATE_TEST_SUITE_P(
    Forms, QuantityTest,
    ::testing::Values(
        QuantityCase{"PlainInteger", "1000", 1000}, QuantityCase{"Kibi", "1Ki", 1024},
        QuantityCase{"Mebi", "6Mi", 6 * 1024 * 1024},
        QuantityCase{"Gibi", "8Gi", std::int64_t{8} << 30},
        QuantityCase{"Tebi", "1Ti", std::int64_t{1} << 40},
        QuantityCase{"Pebi", "2Pi", std::int64_t{2} << 50},
        QuantityCase{"Exbi", "1Ei", std::int64_t{1} << 60}, QuantityCase{"Kilo", "5k", 5000},
        QuantityCase{"Mega", "8M", 8000000}, QuantityCase{"Giga", "8G", 8000000000},
        QuantityCase{"Tera", "1T", 1000000000000}, QuantityCase{"Peta", "1P", 1000000000000000},
        QuantityCase{"Exa", "2E", 2000000000000000000}, QuantityCase{"MilliRoundsUp", "1500m", 2},
        QuantityCase{"MilliExact", "3000m", 3}, QuantityCase{"MicroRoundsUp", "1u", 1},
        QuantityCase{"NanoZero", "0n", 0},
        QuantityCase{"FractionBinary", "0.5Gi", std::int64_t{1} << 29},
        QuantityCase{"FractionDecimal", "1.5G", 1500000000},
        QuantityCase{"FractionRoundsUp", "0.1", 1}, QuantityCase{"ExponentLower", "1e3", 1000},
        QuantityCase{"ExponentUpper", "1E3", 1000}, QuantityCase{"ExponentSigned", "12e+2", 1200},
        QuantityCase{"ExponentNegative", "15e-1", 2},
        QuantityCase{"ExponentTinyRoundsUp", "1e-300", 1}, QuantityCase{"LeadingPlus", "+30", 30},
        QuantityCase{"Negative", "-1Ki", -1024}, QuantityCase{"TrailingDot", "5.", 5},
        QuantityCase{"LeadingDot", ".5k", 500},
        QuantityCase{"Largest", "9223372036854775807", INT64_MAX}),
    [](const auto& test) { return std::string(test.param.name); });

struct BadQuantityCase {
  const char* name;
  const char* text;
  const char* message;
};

class BadQuantityTest : public ::testing::TestWithParam<BadQuantityCase> {};

TEST_P(BadQuantityTest, IsRejectedWithAReason) {
  const Result<std::int64_t> value = ParseQuantity(GetParam().text);
  ASSERT_FALSE(value.ok()) << GetParam().text << " parsed as " << *value;
  EXPECT_EQ(value.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(value.status().message().find(GetParam().message), std::string::npos)
      << value.status().message();
  EXPECT_NE(value.status().message().find("accepted:"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Garbage, BadQuantityTest,
    ::testing::Values(BadQuantityCase{"Empty", "", "empty"},
                      BadQuantityCase{"OnlySuffix", "Gi", "no digits"},
                      BadQuantityCase{"UnknownSuffix", "8GB", "unknown suffix 'GB'"},
                      BadQuantityCase{"LowercaseBinary", "8gi", "unknown suffix"},
                      BadQuantityCase{"TwoDots", "1.2.3", "unknown suffix"},
                      BadQuantityCase{"Space", "8 Gi", "unknown suffix"},
                      BadQuantityCase{"ExponentWithoutDigits", "1e", "unknown suffix"},
                      BadQuantityCase{"ExponentGarbage", "1e3x", "bad exponent"},
                      BadQuantityCase{"TooLarge", "9223372036854775808", "too large"},
                      BadQuantityCase{"TooLargeSuffix", "9Ei", "too large"},
                      BadQuantityCase{"HugeExponent", "1e999", "too large"},
                      BadQuantityCase{"TooManyDigits", "123456789012345678901", "digits"}),
    [](const auto& test) { return std::string(test.param.name); });

TEST(FormatBytesTest, UsesTheLargestExactBinaryUnit) {
  EXPECT_EQ(FormatBytes(std::int64_t{8} << 30), "8Gi");
  EXPECT_EQ(FormatBytes(std::int64_t{6144} << 20), "6Gi");
  EXPECT_EQ(FormatBytes(std::int64_t{1536} << 20), "1536Mi");
  EXPECT_EQ(FormatBytes(1000), "1000");
  EXPECT_EQ(FormatBytes(0), "0");
}

}  // namespace
}  // namespace gpuslice::scheduler
