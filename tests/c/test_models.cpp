// The C++ wrapper's model calls (ttpo::model in ttpo.hpp) against the fake Hub that
// tests/c/run.sh starts: resolve a folder, a missing repo (an Error with its status), the
// default repo's name, and a download with progress that then resolves to the same folder.
//
// usage: test_models_cpp <tiny-model-dir> <fake-hub-endpoint> <repo-id-it-serves>
#include "ttpo.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <unistd.h>

static int failures = 0;
#define CHECK(c)                                                             \
    do {                                                                     \
        if (!(c)) {                                                          \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s <tiny-model-dir> <fake-hub-endpoint> <repo-id>\n", argv[0]);
        return 2;
    }
    const std::string tiny = argv[1], endpoint = argv[2], repo = argv[3];
    char cache[] = "/tmp/ttpo-hpp-models-XXXXXX";
    CHECK(mkdtemp(cache) != nullptr);
    setenv("HF_HUB_CACHE", cache, 1);
    setenv("HF_ENDPOINT", endpoint.c_str(), 1);
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("TTPO_MODEL_DIR");

    CHECK(ttpo::model::default_repo().find('/') != std::string::npos);
    CHECK(ttpo::model::resolve(tiny) == tiny);

    // Not in the (empty) cache: an Error saying so, no network used.
    try {
        ttpo::model::resolve(repo);
        CHECK(false);
    } catch (const ttpo::Error &e) {
        CHECK(e.status() == TTPO_STATUS_MODEL_NOT_FOUND);
        if (std::string(e.what()).find(repo) == std::string::npos) std::fprintf(stderr, "message: %s\n", e.what());
        CHECK(std::string(e.what()).find(repo) != std::string::npos);
    }

    ttpo::model::Download d(repo);
    uint64_t last_done = 0, last_total = 0, calls = 0;
    bool monotonic = true;
    d.on_progress([&](const std::string &, uint64_t, uint64_t, uint64_t done, uint64_t total) {
        if (done < last_done) monotonic = false;
        last_done = done;
        last_total = total;
        calls++;
    });
    const std::string folder = d.run();
    CHECK(calls > 0 && monotonic);
    CHECK(last_total > 0 && last_done == last_total);
    CHECK(folder.rfind(cache, 0) == 0);  // inside the cache we set
    CHECK(ttpo::model::resolve(repo) == folder);
    ttpo::model::verify(repo, "", TTPO_MODEL_VERIFY_SHA256);  // throws on a problem
    try {
        ttpo::model::verify(tiny, "", 4);
        CHECK(false);
    } catch (const ttpo::Error &e) {
        CHECK(e.status() == TTPO_STATUS_INVALID_ARGUMENT);
    }

    // An engine on the downloaded model; a job on it says what it will take, then runs
    // with overall progress rising to 1.
    {
        ttpo::Engine engine(folder);
        ttpo::Options o;
        o.steps(4).strengths_str("0.5").refine_steps(3);
        std::vector<float> px(3 * 32 * 32, 0.5f);
        for (size_t i = 0; i < px.size(); i++) px[i] = float(i % 97) / 97.0f;
        ttpo_image in = {px.data(), 32, 32, 3 * 32 * sizeof(float), TTPO_FORMAT_F32, TTPO_LAYOUT_RGB};
        ttpo::Job job(engine, o, in);
        const auto e = job.estimate();
        CHECK(e.candidates > 0 && e.scoring > 0 && e.refine > 0);
        CHECK(e.total > 0 && e.total >= e.candidates);
        CHECK(job.progress_overall() == 0.0);
        std::vector<float> out(px.size(), -1.0f);
        ttpo_image o_img = {out.data(), 32, 32, 3 * 32 * sizeof(float), TTPO_FORMAT_F32, TTPO_LAYOUT_RGB};
        job.run(o_img);
        CHECK(job.progress_overall() > 0.999);
    }
    std::system((std::string("rm -rf ") + cache).c_str());
    if (failures) std::fprintf(stderr, "%d failure(s)\n", failures);
    else std::printf("test_models_cpp: all checks passed\n");
    return failures ? 1 : 0;
}
