// Every option method of the C++ wrapper (include/ttpo.hpp) reaches its C setter: valid
// values are taken, a value core rejects throws ttpo::Error with the option's name and
// leaves the option as it was, presets and strengths text read back through the getters.
#include "ttpo.hpp"

#include <cstdio>
#include <string>
#include <vector>

static int failures = 0;
#define CHECK(cond) do { if (!(cond)) { std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

template <class F> static std::string rejected(F f) {
    try {
        f();
    } catch (const ttpo::Error &e) {
        return e.status() == TTPO_STATUS_INVALID_ARGUMENT ? e.what() : "wrong status";
    }
    return "";
}

int main() {
    ttpo::Options o;
    o.prompt("a photo").negative_prompt("blur").strengths(std::vector<double>{0.2, 0.4})
        .seeds_per_strength(2).seed(7).steps(12).cfg_scale(5.0).eta(0.5).max_batch(4)
        .pad_mode(1).max_pixels(1u << 20).metrics("piqe,sharpness").fusion(1)
        .brisque_model("").clip_model("").metric_max_pixels(4096).refine_steps(9).alpha(0.25)
        .guidance(500.0).t1(600.0).t2(50.0).d0(0.8).refine_start(0.3).memory_budget_mib(128)
        .unet_tile(256).vae_tile(128).tile_size(0, 0).tile_overlap(0.5);
    CHECK(o.steps() == 12);
    CHECK((o.strengths() == std::vector<double>{0.2, 0.4}));
    o.strengths_str("0.1 0.5,0.9");
    CHECK((o.strengths() == std::vector<double>{0.1, 0.5, 0.9}));
    o.preset("quality");
    CHECK(o.steps() == 50);
    CHECK((o.strengths() == std::vector<double>{0.1, 0.2, 0.3, 0.4}));

    CHECK(rejected([&] { o.steps(0); }).find("steps") != std::string::npos);
    CHECK(o.steps() == 50);
    CHECK(rejected([&] { o.strengths_str("0.1,nope"); }).find("not a number") != std::string::npos);
    CHECK(rejected([&] { o.tile_overlap(0.75); }).find("tile_overlap") != std::string::npos);
    CHECK(rejected([&] { o.metric_max_pixels(10); }).find("metric_max_pixels") != std::string::npos);
    CHECK(rejected([&] { o.guidance(-1.0); }).find("guidance") != std::string::npos);
    CHECK(rejected([&] { o.preset("paper"); }).find("preset") != std::string::npos);
    CHECK(rejected([&] { o.pad_mode(5); }) != "");
    if (failures) {
        std::fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    std::puts("C++ options: all checks passed");
    return 0;
}
