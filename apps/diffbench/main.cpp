// The diffbench command: parses options and calls the library.
#include <iostream>

#include <CLI/CLI.hpp>

#include "diffbench/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"diffbench: measure what a training-free diffusion acceleration buys and costs"};
  app.set_version_flag("--version", std::string("diffbench ") + DIFFBENCH_VERSION);
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
