//! `ttpo_job_contact_sheet`: a job's candidates as one labelled grid — core's
//! `ttpo::sheet`, the same sheet the `ttpo` CLI saves — drawn into the caller's buffer, for
//! hosts that show the candidates in a frame of their own (the OpenFX plug-in).

use crate::image::{ttpo_image, validate, write};
use crate::job::{on_job, size_query, ttpo_job};
use crate::status::Failure;
use ttpo::sheet;

/// The size of the job's contact sheet at its natural scale: 160-pixel thumbnails, two
/// label lines each, `ceil(sqrt(candidates))` columns (the sheet the CLI saves). A caller
/// that can choose its buffer's size allocates this and passes it to
/// `ttpo_job_contact_sheet`. `TTPO_STATUS_INVALID_STATE` before
/// `ttpo_job_generate_candidates`.
///
/// # Safety
/// `job` must be NULL or valid; output pointers must be writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_contact_sheet_size(
    job: *const ttpo_job,
    width: *mut u32,
    height: *mut u32,
) -> u32 {
    size_query(job, width, height, |s| {
        let layout = sheet::Layout::for_count(sheet::tiles(s.job)?.len());
        Ok((layout.width, layout.height))
    })
}

/// Draws the job's contact sheet into `out`, which may be any size (up to the job's
/// `max_pixels`), format and layout: the grid takes the column count and the largest
/// thumbnails that fit `out`, centred on a dark background; label text shrinks with the
/// thumbnails and is left out when they are very small. Each candidate shows its index and
/// strength ("#00 INPUT" for the input), its fused score, and the current choice: the
/// preferred tile framed green and marked BEST, the dispreferred red and WORST. Alpha is
/// opaque. `TTPO_STATUS_INVALID_STATE` before `ttpo_job_generate_candidates`;
/// `TTPO_STATUS_INVALID_IMAGE` when `out` is too small to hold a 1-pixel thumbnail of every
/// candidate. A query: callable from the choice callback of `ttpo_job_run`, refused as busy
/// while a stage runs. Nothing is written on failure.
///
/// # Safety
/// `job` must be NULL or valid; `out` must describe writable memory.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_contact_sheet(
    job: *const ttpo_job,
    out: *const ttpo_image,
) -> u32 {
    on_job(job, |j| {
        let out = out.as_ref().ok_or_else(|| Failure::null("out"))?;
        j.with(|s| {
            // Bounded like an input, so a huge view is a status rather than an allocation
            // that aborts the host.
            let shape = validate(out, s.job.options().max_pixels)?;
            let sheet = sheet::fitted(s.job, shape.width as u32, shape.height as u32)?;
            write(out, &shape, &sheet.image, None)
        })
    })
}
