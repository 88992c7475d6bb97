// The shared library's soname carries the ABI major version, so an incompatible libttpo is
// never picked up by a program built against another major.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libttpo.so.{major}");
    }
}
