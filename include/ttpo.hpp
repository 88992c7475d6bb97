// ttpo.hpp — a small header-only C++17 RAII wrapper over the C API in ttpo.h.
//
// Why header-only over the C ABI rather than a cxx bridge: the C ABI is already the stable
// contract every adapter uses; a wrapper in terms of it adds no second ABI to keep stable,
// needs no extra build step, and works with any compiler that can include ttpo.h.
// Errors become ttpo::Error exceptions carrying the status and the detailed message.
#ifndef TTPO_HPP
#define TTPO_HPP

#include "ttpo.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ttpo {

/// A failed call: the status code and the library's message.
class Error : public std::runtime_error {
public:
    Error(uint32_t status, const std::string &message)
        : std::runtime_error(message.empty() ? std::string(ttpo_status_str(status)) : message), status_(status) {}
    uint32_t status() const noexcept { return status_; }
    bool cancelled() const noexcept { return status_ == TTPO_STATUS_CANCELLED; }

private:
    uint32_t status_;
};

namespace detail {
inline void check(uint32_t status, const char *message) {
    if (status != TTPO_STATUS_OK) throw Error(status, message ? message : "");
}
}  // namespace detail

/// The library version string.
inline std::string version() { return ttpo_version(); }

/// Job options (copyable settings applied to a ttpo_options object).
class Options {
public:
    Options() : o_(ttpo_options_new(), ttpo_options_free) {
        if (!o_) throw std::bad_alloc();
    }
    Options &seed(uint64_t v) { return set(ttpo_options_set_seed(o_.get(), v)); }
    Options &steps(uint32_t v) { return set(ttpo_options_set_steps(o_.get(), v)); }
    Options &refine_steps(uint32_t v) { return set(ttpo_options_set_refine_steps(o_.get(), v)); }
    Options &cfg_scale(double v) { return set(ttpo_options_set_cfg_scale(o_.get(), v)); }
    Options &prompt(const std::string &p) { return set(ttpo_options_set_prompt(o_.get(), p.c_str())); }
    Options &metrics(const std::string &names) { return set(ttpo_options_set_metrics(o_.get(), names.c_str())); }
    Options &strengths(const std::vector<double> &s) { return set(ttpo_options_set_strengths(o_.get(), s.data(), s.size())); }
    const ttpo_options *get() const noexcept { return o_.get(); }

private:
    Options &set(uint32_t status) {
        detail::check(status, ttpo_last_error());
        return *this;
    }
    std::unique_ptr<ttpo_options, void (*)(ttpo_options *)> o_;
};

/// Loaded models; share one engine between jobs.
class Engine {
public:
    explicit Engine(const std::string &model_dir, uint32_t device = TTPO_DEVICE_AUTO, uint32_t precision = TTPO_PRECISION_AUTO)
        : e_(nullptr, ttpo_engine_free) {
        ttpo_engine *e = nullptr;
        detail::check(ttpo_engine_new(model_dir.c_str(), device, 0, precision, &e), ttpo_last_error());
        e_.reset(e);
    }
    const ttpo_engine *get() const noexcept { return e_.get(); }

private:
    std::unique_ptr<ttpo_engine, void (*)(ttpo_engine *)> e_;
};

/// One refinement job. Callbacks are std::function; they run on the calling thread.
class Job {
public:
    using Progress = std::function<void(uint32_t stage, uint32_t step, uint32_t total)>;
    using CancelPoll = std::function<bool()>;

    Job(const Engine &engine, const Options &options, const ttpo_image &input) : j_(nullptr, ttpo_job_free) {
        ttpo_job *j = nullptr;
        detail::check(ttpo_job_new(engine.get(), options.get(), &input, &j), ttpo_last_error());
        j_.reset(j);
    }
    Job(const Job &) = delete;
    Job &operator=(const Job &) = delete;

    void on_progress(Progress f) {
        progress_ = std::move(f);
        check(ttpo_job_set_progress_callback(j_.get(), progress_ ? &Job::progress_tramp : nullptr, this));
    }
    void on_cancel_poll(CancelPoll f) {
        poll_ = std::move(f);
        check(ttpo_job_set_cancel_callback(j_.get(), poll_ ? &Job::poll_tramp : nullptr, this));
    }
    /// Callable from any thread.
    void cancel() noexcept { ttpo_job_cancel(j_.get()); }
    void generate_candidates() { check(ttpo_job_generate_candidates(j_.get())); }
    uint32_t candidate_count() const {
        uint32_t n = 0;
        check(ttpo_job_candidate_count(j_.get(), &n));
        return n;
    }
    void choose(uint32_t preferred, uint32_t dispreferred) { check(ttpo_job_choose(j_.get(), preferred, dispreferred)); }
    std::pair<uint32_t, uint32_t> choice() const {
        uint32_t p = 0, d = 0;
        check(ttpo_job_get_choice(j_.get(), &p, &d));
        return {p, d};
    }
    void refine(const ttpo_image &out) { check(ttpo_job_refine(j_.get(), &out)); }
    void run(const ttpo_image &out) { check(ttpo_job_run(j_.get(), &out)); }

private:
    void check(uint32_t status) const { detail::check(status, ttpo_job_last_error(j_.get())); }
    static void progress_tramp(void *self, uint32_t stage, uint32_t step, uint32_t total, double) {
        auto *job = static_cast<Job *>(self);
        try { job->progress_(stage, step, total); } catch (...) {}  // never unwind into C
    }
    static int32_t poll_tramp(void *self) {
        auto *job = static_cast<Job *>(self);
        try { return job->poll_() ? 1 : 0; } catch (...) { return 1; }
    }
    std::unique_ptr<ttpo_job, void (*)(ttpo_job *)> j_;
    Progress progress_;
    CancelPoll poll_;
};

}  // namespace ttpo
#endif  // TTPO_HPP
