// eval's batch writer: on a GPU a batch's PNGs and journal line are written on a thread of their own
// while the next batch is generated. What it leaves on disk must be what writing each batch before
// the next one (the CPU's way, and the way before) leaves: the same PNG bytes, the same journal
// lines in the same order; and a write error reaches the caller.
#include <fstream>

#include <gtest/gtest.h>

#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"
#include "eval/batch_writer.hpp"
#include "eval/eval_journal.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

JournalBatch batch(int i, size_t count) {
  JournalBatch b;
  b.at.side = i % 2;
  b.at.pass = 0;
  b.at.batch = i / 2;
  b.record.first = static_cast<size_t>(i / 2) * count;
  b.record.count = count;
  b.start_s = 0.25 * i;
  b.clip = std::vector<double>(count, 20.0 + i);
  b.images = true;
  return b;
}

std::vector<fs::path> files_of(const fs::path& dir, const JournalBatch& b) {
  std::vector<fs::path> files;
  const fs::path side = dir / (b.at.side == 0 ? "baseline" : "candidate");
  for (size_t i = 0; i < b.record.count; ++i) files.push_back(side / png_sequence_name(b.record.first + i));
  return files;
}

}  // namespace

TEST(BatchWriter, OverlappedWritesLeaveWhatSynchronousWritesLeave) {
  const fs::path root = test::temp_dir("batch-writer");
  const nlohmann::json material = {{"what", "test"}};
  at::manual_seed(3);
  std::vector<at::Tensor> images;
  for (int i = 0; i < 6; ++i) images.push_back(at::randint(0, 256, {3, 3, 24, 32}, at::kByte));
  for (const bool overlap : {false, true}) {
    const fs::path dir = root / (overlap ? "overlap" : "sync");
    fs::create_directories(dir);
    const EvalJournal journal = EvalJournal::create(dir, material, ScheduleChoice{});
    BatchWriter writer(journal, overlap);
    for (int i = 0; i < 6; ++i) {
      const JournalBatch b = batch(i, 3);
      writer.push(b, files_of(dir, b), images[static_cast<size_t>(i)]);
      if (!overlap) EXPECT_EQ(writer.written(), static_cast<size_t>(i + 1)) << "written before push returns";
    }
    writer.push(batch(6, 3), {}, at::Tensor());  // an automatic pass's batch: a journal line only
    writer.drain();
    EXPECT_EQ(writer.written(), 7u);
  }
  for (int i = 0; i < 6; ++i) {
    const JournalBatch b = batch(i, 3);
    const auto sync = files_of(root / "sync", b), overlapped = files_of(root / "overlap", b);
    for (size_t j = 0; j < sync.size(); ++j) {
      EXPECT_EQ(test::read_bytes(sync[j]), test::read_bytes(overlapped[j])) << overlapped[j];
      EXPECT_TRUE(read_png(overlapped[j]).equal(images[static_cast<size_t>(i)][static_cast<int64_t>(j)]));
    }
  }
  const EvalJournal a = EvalJournal::resume(root / "sync", material), b = EvalJournal::resume(root / "overlap", material);
  ASSERT_EQ(b.batches().size(), 7u);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(b.batches()[i].at.side, a.batches()[i].at.side);
    EXPECT_EQ(b.batches()[i].at.batch, a.batches()[i].at.batch);
    EXPECT_EQ(b.batches()[i].record.first, a.batches()[i].record.first);
    EXPECT_EQ(b.batches()[i].start_s, a.batches()[i].start_s);
    EXPECT_EQ(b.batches()[i].clip, a.batches()[i].clip);
  }
  fs::remove_all(root);
}

TEST(BatchWriter, AWriteErrorReachesTheCallerAndStopsTheJournal) {
  const fs::path dir = test::temp_dir("batch-writer-error");
  fs::create_directories(dir);
  std::ofstream(dir / "baseline") << "a file where the folder would go";
  const EvalJournal journal = EvalJournal::create(dir, nlohmann::json::object(), ScheduleChoice{});
  {
    BatchWriter writer(journal, /*overlap=*/true);
    const JournalBatch b = batch(0, 2);
    writer.push(b, files_of(dir, b), at::zeros({2, 3, 8, 8}, at::kByte));
    EXPECT_ANY_THROW(writer.drain());
    EXPECT_ANY_THROW(writer.push(batch(1, 2), {}, at::Tensor())) << "nothing is queued after an error";
    EXPECT_EQ(writer.written(), 0u);
  }
  EXPECT_TRUE(EvalJournal::resume(dir, nlohmann::json::object()).batches().empty())
      << "a batch whose PNGs failed has no journal line";
  fs::remove_all(dir);
}
