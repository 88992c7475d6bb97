//! One module per subcommand; each has `run(global, args)`. What several commands share
//! lives outside: `engine` (model and engine), `input` (image files), `saved` (the
//! candidates folder's JSON, also the rows and scores of `--json` reports), `ui`
//! (progress, status lines, Ctrl-C, atomic writes).

pub mod batch;
pub mod candidates;
pub mod models;
pub mod refine;
pub mod restore;
pub mod score;
