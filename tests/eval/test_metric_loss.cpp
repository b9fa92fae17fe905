// --max-metric-loss NAME=PCT: parsing, the checks made before any work, and the verdict on report.json's loss_pct.
#include "diffbench/error.hpp"
#include "diffbench/eval/metric_loss.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

std::string usage_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    EXPECT_EQ(e.where(), "--max-metric-loss");
    return e.message();
  }
  ADD_FAILURE() << "no UsageError";
  return "";
}

}  // namespace

TEST(MetricLoss, LimitsParseAsNameEqualsPercent) {
  MetricLossLimits limits;
  add_metric_loss_limit("ssim=5", limits);
  add_metric_loss_limit("clip=0.5", limits);
  EXPECT_EQ(limits, (MetricLossLimits{{"clip", 0.5}, {"ssim", 5.0}}));
  for (const char* bad : {"ssim", "=5", "ssim=", "ssim=abc", "ssim=5x", "ssim=-1", "ssim=nan", "ssim=inf", "ssim=3"})
    EXPECT_NE(usage_message([&] { add_metric_loss_limit(bad, limits); }), "") << bad;
  EXPECT_NE(usage_message([&] { add_metric_loss_limit("ssim=3", limits); }).find("twice"), std::string::npos);
}

TEST(MetricLoss, OnlyMetricsWithARelativeLossAreAccepted) {
  const MetricSet all = parse_metric_set("clip,psnr,ssim,lpips,kid,fid");
  EXPECT_NO_THROW(validate_metric_loss_limits({{"clip", 1}, {"ssim", 1}}, all, false));
  EXPECT_NO_THROW(validate_metric_loss_limits({{"kid", 1}, {"fid", 1}}, all, true));
  EXPECT_NE(usage_message([&] { validate_metric_loss_limits({{"psnr", 1}}, all, true); }).find("--min-psnr"),
            std::string::npos);
  EXPECT_NE(usage_message([&] { validate_metric_loss_limits({{"lpips", 1}}, all, true); }).find("--max-lpips"),
            std::string::npos);
  EXPECT_NE(usage_message([&] { validate_metric_loss_limits({{"fid", 1}}, all, false); }).find("--reference-images"),
            std::string::npos);
  EXPECT_NE(usage_message([&] { validate_metric_loss_limits({{"kid", 1}}, all, false); }).find("--max-kid"),
            std::string::npos);
  EXPECT_NE(usage_message([&] { validate_metric_loss_limits({{"mse", 1}}, all, true); }).find("unknown"),
            std::string::npos);
  EXPECT_NE(usage_message([&] { validate_metric_loss_limits({{"ssim", 1}}, parse_metric_set("clip"), true); })
                .find("--metrics"),
            std::string::npos);
}

TEST(MetricLoss, EachLimitIsCheckedAndRecorded) {
  nlohmann::json metrics = {{"clip", {{"loss_pct", 3.0}}},
                            {"ssim", {{"loss_pct", 10.0}}},
                            {"fid", {{"increase", 1.0}}},                 // no loss_pct: undefined
                            {"kid", {{"loss_pct", nullptr}}}};
  std::vector<std::string> failures;
  const nlohmann::json recorded =
      apply_metric_loss_limits({{"clip", 5}, {"ssim", 10}, {"fid", 1}, {"kid", 50}}, metrics, &failures);
  EXPECT_EQ(recorded, nlohmann::json({{"clip", 5.0}, {"fid", 1.0}, {"kid", 50.0}, {"ssim", 10.0}}));
  EXPECT_TRUE(metrics["clip"]["loss_threshold"]["passed"].get<bool>());
  EXPECT_TRUE(metrics["ssim"]["loss_threshold"]["passed"].get<bool>());  // at the limit
  EXPECT_FALSE(metrics["fid"]["loss_threshold"]["passed"].get<bool>());
  EXPECT_FALSE(metrics["kid"]["loss_threshold"]["passed"].get<bool>());
  ASSERT_EQ(failures.size(), 2u);
  for (const auto& f : failures) {
    EXPECT_NE(f.find("undefined"), std::string::npos) << f;
    EXPECT_NE(f.find("--max-metric-loss"), std::string::npos) << f;
  }
  failures.clear();
  apply_metric_loss_limits({{"ssim", 9.99}}, metrics, &failures);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0].find("ssim loss 10.00 % exceeds --max-metric-loss ssim=9.99 %"), std::string::npos) << failures[0];
}
