// The shared library's soname carries the ABI level (`TTPO_ABI_VERSION`, read from the same
// file the library exports it from), so an incompatible libttpo is never picked up by a
// program built against another ABI.
#[path = "src/abi.rs"]
mod abi;

fn main() {
    println!("cargo:rerun-if-changed=src/abi.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-soname,libttpo.so.{}",
            abi::TTPO_ABI_VERSION
        );
    }
}
