//! Serves a model folder as a fake Hugging Face Hub repo on 127.0.0.1 until stdin closes;
//! prints the endpoint (for `HF_ENDPOINT`) on the first line of stdout. Used by the C API
//! tests (tests/c/run.sh); never contacts the network.
//!
//! usage: fake_hub <repo-id> <commit> <model-dir> [pause-ms]

use std::io::Write;
use std::time::Duration;
use ttpo_models::fake_hub::{read_tree, wait_for_eof, FakeHub};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: fake_hub <repo-id> <commit> <model-dir> [pause-ms]");
        std::process::exit(2);
    }
    let pause = args
        .get(4)
        .and_then(|m| m.parse().ok())
        .map(Duration::from_millis);
    let files = read_tree(std::path::Path::new(&args[3]));
    let hub = FakeHub::serve_with(&args[1], &args[2], files, pause);
    println!("{}", hub.endpoint);
    std::io::stdout().flush().expect("stdout");
    wait_for_eof(std::io::stdin());
}
