// Progress lines: a bar redrawn in place on a terminal, one line per batch otherwise, nothing when quiet.
#include <gtest/gtest.h>

#include <sstream>

#include "diffbench/progress.hpp"

using namespace diffbench;

TEST(Progress, OneLinePerBatchOffTerminalWithRateAndEta) {
  std::ostringstream out;
  const Logger log(LogLevel::Info, out, false);
  {
    Progress p(log, "timing", {{"baseline", 2}, {"candidate", 2}});
    p.batch_done(0, 4, 2.0);
    // 4 images in 2 s; ETA: baseline's one batch left at 2 s, candidate's two at the overall mean 2 s.
    EXPECT_EQ(out.str(), "timing: batch 1/4 (baseline) · 2.00 images/s · ETA 0:06\n");
    p.batch_done(1, 4, 1.0);
    p.step(3, 10);  // only drawn on a terminal
    // 8 images in 3 s; ETA: 2 s (baseline) + 1 s (candidate).
    EXPECT_EQ(out.str(), "timing: batch 1/4 (baseline) · 2.00 images/s · ETA 0:06\n"
                         "timing: batch 2/4 (candidate) · 2.67 images/s · ETA 0:03\n");
  }
  EXPECT_EQ(out.str().find('\r'), std::string::npos);
}

TEST(Progress, BarInPlaceOnTerminal) {
  std::ostringstream out;
  const Logger log(LogLevel::Info, out, true);
  {
    Progress p(log, "generate", {{"", 4}});
    p.batch_done(0, 2, 1.0);
    EXPECT_EQ(out.str(), "\rgenerate [######..................] batch 1/4 · 2.00 images/s · ETA 0:03\033[K");
    log.progress("batch 2", 5, 10);  // the pipeline's step bar goes into the same line
    EXPECT_NE(out.str().find("\rgenerate [#########...............] batch 2/4 · 2.00 images/s · ETA 0:03 · step 5/10"),
              std::string::npos)
        << out.str();
    log.info("a message");  // clears the line first, and the next update redraws it
    EXPECT_NE(out.str().find("\r\033[Ka message\n"), std::string::npos);
    p.batch_done(0, 2, 1.0);
  }
  EXPECT_EQ(out.str().back(), '\n');  // the bar's line is ended
}

TEST(Progress, QuietPrintsNothing) {
  std::ostringstream out;
  const Logger log(LogLevel::Error, out, true);
  Progress p(log, "timing", {{"", 2}});
  p.batch_done(0, 1, 1.0);
  p.step(1, 2);
  EXPECT_EQ(out.str(), "");
}

TEST(Progress, Clock) {
  EXPECT_EQ(Progress::clock(42.4), "0:42");
  EXPECT_EQ(Progress::clock(723), "12:03");
  EXPECT_EQ(Progress::clock(3723), "1:02:03");
  EXPECT_EQ(Progress::clock(-1), "?");
  EXPECT_EQ(Progress::clock(std::nan("")), "?");
}
