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
/// For calls whose message is this thread's ttpo_last_error(). It is read here, after the
/// call: as a second argument beside the call it could be read before the call (argument
/// order is unspecified), and the failing call then frees the string it pointed to.
inline void check_last(uint32_t status) {
    if (status != TTPO_STATUS_OK) check(status, ttpo_last_error());
}
}  // namespace detail

/// The library version string.
inline std::string version() { return ttpo_version(); }

/// Job options: one method per option, named as the option and its C setter
/// (ttpo_options_set_<name>); see docs/C-API.md for ranges and defaults. A rejected value
/// throws ttpo::Error and leaves the option as it was.
class Options {
public:
    Options() : o_(ttpo_options_new(), ttpo_options_free) {
        if (!o_) throw std::bad_alloc();
    }
    /// Applies a preset ("fast", "balanced", "quality"; see ttpo_preset_name).
    Options &preset(const std::string &name) { return set(ttpo_options_apply_preset(o_.get(), name.c_str())); }
    Options &prompt(const std::string &p) { return set(ttpo_options_set_prompt(o_.get(), p.c_str())); }
    Options &negative_prompt(const std::string &p) { return set(ttpo_options_set_negative_prompt(o_.get(), p.c_str())); }
    Options &strengths(const std::vector<double> &s) { return set(ttpo_options_set_strengths(o_.get(), s.data(), s.size())); }
    /// Strengths as text, e.g. "0.1,0.2,0.3" (the form the CLI and the plug-ins take).
    Options &strengths_str(const std::string &s) { return set(ttpo_options_set_strengths_str(o_.get(), s.c_str())); }
    Options &seeds_per_strength(uint32_t v) { return set(ttpo_options_set_seeds_per_strength(o_.get(), v)); }
    Options &seed(uint64_t v) { return set(ttpo_options_set_seed(o_.get(), v)); }
    Options &steps(uint32_t v) { return set(ttpo_options_set_steps(o_.get(), v)); }
    Options &cfg_scale(double v) { return set(ttpo_options_set_cfg_scale(o_.get(), v)); }
    Options &eta(double v) { return set(ttpo_options_set_eta(o_.get(), v)); }
    Options &flow_guidance(double v) { return set(ttpo_options_set_flow_guidance(o_.get(), v)); }
    Options &max_batch(uint32_t v) { return set(ttpo_options_set_max_batch(o_.get(), v)); }
    /// 0 = reflect, 1 = zero.
    Options &pad_mode(uint32_t v) { return set(ttpo_options_set_pad_mode(o_.get(), v)); }
    Options &max_pixels(uint64_t v) { return set(ttpo_options_set_max_pixels(o_.get(), v)); }
    Options &metrics(const std::string &names) { return set(ttpo_options_set_metrics(o_.get(), names.c_str())); }
    /// 0 = z-score, 1 = entropy-weighted.
    Options &fusion(uint32_t v) { return set(ttpo_options_set_fusion(o_.get(), v)); }
    /// "" clears it.
    Options &brisque_model(const std::string &dir) { return set(ttpo_options_set_brisque_model(o_.get(), dir.c_str())); }
    /// "" clears it.
    Options &clip_model(const std::string &dir) { return set(ttpo_options_set_clip_model(o_.get(), dir.c_str())); }
    Options &iqa_model_dir(const std::string &dir) { return set(ttpo_options_set_iqa_model_dir(o_.get(), dir.c_str())); }
    Options &restore(const std::string &name) { return set(ttpo_options_set_restore(o_.get(), name.c_str())); }
    Options &restore_dir(const std::string &dir) { return set(ttpo_options_set_restore_dir(o_.get(), dir.c_str())); }
    /// Noise level (0..255 scale, 0..=75) for the denoisers "ffdnet" / "ffdnet-gray".
    Options &restore_noise(double v) { return set(ttpo_options_set_restore_noise(o_.get(), v)); }
    Options &metric_max_pixels(uint64_t v) { return set(ttpo_options_set_metric_max_pixels(o_.get(), v)); }
    Options &refine_steps(uint32_t v) { return set(ttpo_options_set_refine_steps(o_.get(), v)); }
    Options &alpha(double v) { return set(ttpo_options_set_alpha(o_.get(), v)); }
    Options &guidance(double v) { return set(ttpo_options_set_guidance(o_.get(), v)); }
    Options &t1(double v) { return set(ttpo_options_set_t1(o_.get(), v)); }
    Options &t2(double v) { return set(ttpo_options_set_t2(o_.get(), v)); }
    Options &d0(double v) { return set(ttpo_options_set_d0(o_.get(), v)); }
    /// 0 = pure noise, else an img2img strength in (0, 1].
    Options &refine_start(double v) { return set(ttpo_options_set_refine_start(o_.get(), v)); }
    Options &memory_budget_mib(uint32_t v) { return set(ttpo_options_set_memory_budget_mib(o_.get(), v)); }
    Options &unet_tile(uint32_t v) { return set(ttpo_options_set_unet_tile(o_.get(), v)); }
    Options &vae_tile(uint32_t v) { return set(ttpo_options_set_vae_tile(o_.get(), v)); }
    Options &tile_size(uint32_t unet, uint32_t vae) { return set(ttpo_options_set_tile_size(o_.get(), unet, vae)); }
    Options &tile_overlap(double v) { return set(ttpo_options_set_tile_overlap(o_.get(), v)); }

    uint32_t steps() const {
        uint32_t v = 0;
        detail::check_last(ttpo_options_get_steps(o_.get(), &v));
        return v;
    }
    std::vector<double> strengths() const {
        std::vector<double> v(256);
        size_t n = 0;
        detail::check_last(ttpo_options_get_strengths(o_.get(), v.data(), v.size(), &n));
        v.resize(n);
        return v;
    }
    const ttpo_options *get() const noexcept { return o_.get(); }

private:
    Options &set(uint32_t status) {
        detail::check_last(status);
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
        detail::check_last(ttpo_engine_new(model_dir.c_str(), device, 0, precision, &e));
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
        detail::check_last(ttpo_job_new(engine.get(), options.get(), &input, &j));
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
    /// The contact sheet's natural size (160-px thumbnails), after generate_candidates().
    std::pair<uint32_t, uint32_t> contact_sheet_size() const {
        uint32_t w = 0, h = 0;
        check(ttpo_job_contact_sheet_size(j_.get(), &w, &h));
        return {w, h};
    }
    /// Draws the labelled candidate grid fitted into `out` (any size, format, layout).
    void contact_sheet(const ttpo_image &out) const { check(ttpo_job_contact_sheet(j_.get(), &out)); }
    void refine(const ttpo_image &out) { check(ttpo_job_refine(j_.get(), &out)); }
    void run(const ttpo_image &out) { check(ttpo_job_run(j_.get(), &out)); }
    /// What run() would still take here, in seconds (see ttpo_job_estimate: measures once
    /// per engine and tile shape: one UNet call and two VAE tiles).
    struct Estimate {
        double total, candidates, scoring, refine;
    };
    Estimate estimate() {
        double total = 0, stages[3] = {0, 0, 0};
        check(ttpo_job_estimate(j_.get(), &total, stages));
        return {total, stages[0], stages[1], stages[2]};
    }
    /// Overall progress in [0, 1] (all stages); callable from the progress callback.
    double progress_overall() const {
        double v = 0;
        check(ttpo_job_progress_overall(j_.get(), &v));
        return v;
    }

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

/// Models: where they are on this machine and how to get them (ttpo_model_*).
namespace model {

/// The default model's Hub repo id.
inline std::string default_repo() { return ttpo_model_default_repo(); }

/// The local folder of `model` (a folder, or a Hub id in the Hugging Face cache; "" = the
/// default), without network access. Throws ttpo::Error (TTPO_STATUS_MODEL_NOT_FOUND when
/// it must be downloaded first).
inline std::string resolve(const std::string &model = "", const std::string &revision = "") {
    size_t len = 0;
    detail::check_last(ttpo_model_resolve(model.c_str(), revision.c_str(), nullptr, 0, &len));
    std::string path(len + 1, '\0');
    detail::check_last(ttpo_model_resolve(model.c_str(), revision.c_str(), &path[0], path.size(), &len));
    path.resize(len);
    return path;
}

/// Checks a model on this machine (see ttpo_model_verify; flags TTPO_MODEL_VERIFY_*).
/// Throws ttpo::Error listing the problems.
inline void verify(const std::string &model = "", const std::string &revision = "", uint32_t flags = 0) {
    detail::check_last(ttpo_model_verify(model.c_str(), revision.c_str(), flags));
}

/// A download of a Hub repo into the Hugging Face cache. run() blocks (call it off the UI
/// thread); cancel() may be called from any thread.
class Download {
public:
    /// Bytes of the current file and of the whole model (totals 0 = unknown yet).
    using Progress = std::function<void(const std::string &file, uint64_t file_done, uint64_t file_total,
                                        uint64_t done, uint64_t total)>;
    explicit Download(const std::string &repo = "", const std::string &revision = "")
        : d_(nullptr, ttpo_model_download_free), repo_(repo.empty() ? default_repo() : repo), revision_(revision) {
        ttpo_model_download *d = nullptr;
        detail::check_last(ttpo_model_download_new(repo.c_str(), revision.c_str(), &d));
        d_.reset(d);
    }
    void on_progress(Progress f) {
        progress_ = std::move(f);
        check(ttpo_model_download_set_progress_callback(d_.get(), progress_ ? &Download::tramp : nullptr, this));
    }
    void cancel() noexcept { ttpo_model_download_cancel(d_.get()); }
    /// Downloads what is missing; returns the model's folder.
    std::string run() {
        size_t len = 0;  // the path's length only; resolve() returns the path itself
        check(ttpo_model_download_run(d_.get(), nullptr, 0, &len));
        return resolve(repo_, revision_);
    }

private:
    void check(uint32_t status) const { detail::check(status, ttpo_model_download_last_error(d_.get())); }
    static void tramp(void *self, const char *file, uint64_t fd, uint64_t ft, uint64_t done, uint64_t total) {
        auto *d = static_cast<Download *>(self);
        try { d->progress_(file ? file : "", fd, ft, done, total); } catch (...) {}  // never unwind into C
    }
    std::unique_ptr<ttpo_model_download, void (*)(ttpo_model_download *)> d_;
    std::string repo_, revision_;
    Progress progress_;
};

}  // namespace model
}  // namespace ttpo
#endif  // TTPO_HPP
