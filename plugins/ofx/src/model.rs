//! Which model a render uses. The `modelDir` parameter holds a model folder, a Hugging Face
//! Hub id (`org/name`) or nothing ($TTPO_MODEL_DIR, else libttpo's default repo);
//! libttpo's `ttpo_model_resolve` turns it into a folder without touching the network (the
//! rules and the Hugging Face cache lookup are the library's, shared with GIMP and the CLI).
//!
//! A model that is not on the machine fails the render with a persistent message naming
//! `ttpo models download <id>`. A compositor render never downloads on its own: models are
//! several GB, a render runs on the host's render thread (often in the background or on a
//! render farm) with no way to show a download's progress or cancel it, and a frame must not
//! silently wait minutes for the network.

use crate::engine::{Api, TTPO_STATUS_MODEL_NOT_FOUND};

/// The folder of the model `text` names (see the module doc), or the message for the user.
pub fn resolve(api: &Api, text: &str) -> Result<String, String> {
    let text = text.trim();
    match api.model_resolve(text) {
        Ok(dir) => Ok(dir),
        Err((status, detail)) => {
            let repo = match text {
                "" if std::env::var_os("TTPO_MODEL_DIR").is_some_and(|v| !v.is_empty()) => None,
                "" => Some(api.model_default_repo()),
                t if looks_like_repo_id(t) => Some(t.to_string()),
                _ => None,
            };
            Err(match repo {
                Some(id) if status == TTPO_STATUS_MODEL_NOT_FOUND => format!(
                    "TTPO: the model {id} is not on this machine, and a render never downloads \
                     one (models are several GB). Download it once in a terminal: \
                     `ttpo models download {id}`, or set Model to a model folder. \
                     (libttpo: {detail})"
                ),
                _ => format!("TTPO: model {text:?}: {detail}"),
            })
        }
    }
}

/// Only the wording of the message depends on this (libttpo decides what the text is): a
/// path starts with `/`, `.` or `~` or has more than one `/`; a Hub id is `org/name`.
fn looks_like_repo_id(t: &str) -> bool {
    !t.starts_with(['/', '.', '~']) && t.matches('/').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::looks_like_repo_id;

    #[test]
    fn ids_and_paths_are_told_apart_for_the_message() {
        for id in ["acme/tiny", "stabilityai/stable-diffusion-2-1-base", "sd-2"] {
            assert!(looks_like_repo_id(id), "{id}");
        }
        for path in [
            "/models/sd",
            "./sd",
            "../sd",
            "~/sd",
            "models/sd/v2",
            "/nonexistent/model",
        ] {
            assert!(!looks_like_repo_id(path), "{path}");
        }
    }
}
