// The OpenFX parameter and message suites are C-variadic: a tiny C shim implements them and
// forwards to the Rust host through function pointers.
fn main() {
    println!("cargo:rerun-if-changed=shim.c");
    cc::Build::new()
        .file("shim.c")
        .warnings(true)
        .compile("ofxhostshim");
}
