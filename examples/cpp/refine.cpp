// Refines a PNG through the C++ wrapper (include/ttpo.hpp): progress on stderr, Ctrl-C
// cancels through the job's cancel poll.
//
//   refine_cpp <model-dir> <in.png> <out.png> [--steps N] [--seed N]
#include "ttpo.hpp"

extern "C" {
#include "../c/png_io.h"
}

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

static volatile std::sig_atomic_t interrupted = 0;

int main(int argc, char **argv) {
    if (argc < 4) {
        std::cerr << "usage: " << argv[0] << " <model-dir> <in.png> <out.png> [--steps N] [--seed N]\n";
        return 2;
    }
    try {
        ttpo::Options options;
        for (int i = 4; i + 1 < argc; i += 2) {
            std::string flag = argv[i];
            if (flag == "--steps") {
                options.steps(static_cast<uint32_t>(std::stoul(argv[i + 1]))).refine_steps(static_cast<uint32_t>(std::stoul(argv[i + 1])));
            } else if (flag == "--seed") {
                options.seed(std::stoull(argv[i + 1]));
            } else {
                std::cerr << "unknown option " << flag << "\n";
                return 2;
            }
        }
        uint32_t w = 0, h = 0;
        std::unique_ptr<uint8_t, void (*)(void *)> pixels(png_read_rgba(argv[2], &w, &h), std::free);
        if (!pixels) {
            std::cerr << "error: cannot read " << argv[2] << "\n";
            return 1;
        }
        std::signal(SIGINT, [](int) { interrupted = 1; });
        ttpo::Engine engine(argv[1]);
        ttpo_image in{pixels.get(), w, h, static_cast<intptr_t>(4 * w), TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
        ttpo::Job job(engine, options, in);
        job.on_progress([](uint32_t stage, uint32_t step, uint32_t total) {
            static const char *names[] = {"", "candidates", "scoring", "refine"};
            std::fprintf(stderr, "\r%-10s %3u/%-3u", stage <= 3 ? names[stage] : "?", step, total);
            if (step == total) std::fputc('\n', stderr);
        });
        job.on_cancel_poll([] { return interrupted != 0; });
        std::vector<uint8_t> out(static_cast<size_t>(4) * w * h);
        ttpo_image ov{out.data(), w, h, static_cast<intptr_t>(4 * w), TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
        job.run(ov);
        if (png_write_rgba(argv[3], out.data(), w, h) != 0) {
            std::cerr << "error: cannot write " << argv[3] << "\n";
            return 1;
        }
        auto [p, d] = job.choice();
        std::cerr << "wrote " << argv[3] << " (preferred candidate " << p << ", dispreferred " << d << ")\n";
        return 0;
    } catch (const ttpo::Error &e) {
        std::cerr << "\nerror: " << e.what() << "\n";
        return e.cancelled() ? 130 : 1;
    }
}
