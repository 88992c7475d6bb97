//! `ttpo-sys` against `include/ttpo.h`: every name, constant value, function and callback
//! signature (argument names and types, return type), opaque type and struct field (order,
//! name, type) must agree both ways, and the C compiler must lay `ttpo_image` out as Rust
//! does. The header itself is kept equal to the library's code by `ffi/tests/header.rs`.

use regex::Regex;
use std::collections::BTreeMap;
use std::path::Path;
use ttpo_sys::*;

/// What the header declares, in C spelling with whitespace removed from types.
#[derive(Default)]
struct Header {
    constants: BTreeMap<String, u64>,
    opaque: Vec<String>,
    structs: BTreeMap<String, Vec<(String, String)>>,
    callbacks: BTreeMap<String, (String, Vec<(String, String)>)>,
    functions: BTreeMap<String, (String, Vec<(String, String)>)>,
}

fn header_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/ttpo.h")
}

fn squash(c_type: &str) -> String {
    c_type.split_whitespace().collect()
}

/// `const char *name` -> ("name", "constchar*").
fn c_param(p: &str) -> (String, String) {
    let re = Regex::new(r"^(.*?)(\w+)$").unwrap();
    let c = re
        .captures(p.trim())
        .unwrap_or_else(|| panic!("parameter {p:?}"));
    (c[2].to_string(), squash(&c[1]))
}

fn c_params(list: &str) -> Vec<(String, String)> {
    let list = list.trim();
    if list == "void" || list.is_empty() {
        return vec![];
    }
    list.split(',').map(c_param).collect()
}

fn parse_header(text: &str) -> Header {
    let comments = Regex::new(r"(?s)/\*.*?\*/|//[^\n]*").unwrap();
    let text = comments.replace_all(text, "");
    let mut h = Header::default();
    for c in Regex::new(r"(?m)^#define (TTPO_\w+) (\d+)$")
        .unwrap()
        .captures_iter(&text)
    {
        h.constants.insert(c[1].into(), c[2].parse().unwrap());
    }
    // Preprocessor lines out, then one statement per match.
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let enums = Regex::new(r"enum (ttpo_\w+)\s*(?::\s*uint32_t)?\s*\{([^}]*)\};").unwrap();
    let member = Regex::new(r"(\w+) = (\d+)").unwrap();
    for e in enums.captures_iter(&code) {
        for c in member.captures_iter(&e[2]) {
            h.constants.insert(c[1].into(), c[2].parse().unwrap());
        }
    }
    for c in Regex::new(r"typedef struct (ttpo_\w+) (\w+);")
        .unwrap()
        .captures_iter(&code)
    {
        assert_eq!(&c[1], &c[2]);
        h.opaque.push(c[1].into());
    }
    for c in Regex::new(r"typedef struct \{([^}]*)\} (ttpo_\w+);")
        .unwrap()
        .captures_iter(&code)
    {
        let fields = c[1]
            .split(';')
            .filter(|f| !f.trim().is_empty())
            .map(c_param)
            .collect();
        h.structs.insert(c[2].into(), fields);
    }
    let callback = Regex::new(r"typedef ([\w\s\*]+?)\s*\(\*(ttpo_\w+)\)\(([^()]*)\);").unwrap();
    for c in callback.captures_iter(&code) {
        h.callbacks
            .insert(c[2].into(), (squash(&c[1]), c_params(&c[3])));
    }
    let code = callback.replace_all(&code, "");
    let function = Regex::new(r"(?m)^([\w][\w\s\*]*?)\s*\b(ttpo_\w+)\(([^()]*)\);").unwrap();
    for c in function.captures_iter(&code) {
        h.functions
            .insert(c[2].into(), (squash(&c[1]), c_params(&c[3])));
    }
    h
}

/// A Rust type as `stringify!` wrote it, in the header's spelling (whitespace removed).
fn rust_to_c(rust: &str) -> String {
    let spaced = rust.replace('*', " * ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    fn go(t: &[&str]) -> String {
        match t {
            ["*", q @ ("const" | "mut"), rest @ ..] => {
                let inner = go(rest);
                match (*q, inner.contains('*')) {
                    ("const", false) => format!("const{inner}*"),
                    ("const", true) => format!("{inner}const*"),
                    _ => format!("{inner}*"),
                }
            }
            [base] => match *base {
                "u32" => "uint32_t",
                "i32" => "int32_t",
                "u64" => "uint64_t",
                "f64" => "double",
                "usize" => "size_t",
                "isize" => "ptrdiff_t",
                "c_char" => "char",
                "c_void" | "()" => "void",
                other => other,
            }
            .to_string(),
            other => panic!("no C spelling for the Rust type {other:?}"),
        }
    }
    go(&tokens)
}

fn rust_params(args: &[Field]) -> Vec<(String, String)> {
    args.iter()
        .map(|(n, t)| (n.to_string(), rust_to_c(t)))
        .collect()
}

fn rust_signatures(list: &[Signature]) -> BTreeMap<String, (String, Vec<(String, String)>)> {
    list.iter()
        .map(|s| (s.name.into(), (rust_to_c(s.ret), rust_params(s.args))))
        .collect()
}

/// Two maps equal, with the differing names in the message.
fn same<V: PartialEq + std::fmt::Debug>(
    what: &str,
    rust: &BTreeMap<String, V>,
    c: &BTreeMap<String, V>,
) {
    let mut diffs = Vec::new();
    for (k, v) in rust {
        match c.get(k) {
            None => diffs.push(format!("{k}: in ttpo-sys, not in the header")),
            Some(cv) if cv != v => diffs.push(format!("{k}: ttpo-sys {v:?}, header {cv:?}")),
            _ => {}
        }
    }
    for k in c.keys().filter(|k| !rust.contains_key(*k)) {
        diffs.push(format!("{k}: in the header, not in ttpo-sys"));
    }
    assert!(diffs.is_empty(), "{what} differ:\n{}", diffs.join("\n"));
}

fn header() -> Header {
    parse_header(&std::fs::read_to_string(header_path()).expect("include/ttpo.h"))
}

#[test]
fn constants_match_the_header() {
    let h = header();
    assert!(h.constants.len() > 30, "parsed only {:?}", h.constants);
    let rust = CONSTANTS.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    same("constants", &rust, &h.constants);
}

#[test]
fn functions_match_the_header() {
    let h = header();
    assert!(
        h.functions.len() > 50,
        "parsed only {:?}",
        h.functions.keys()
    );
    same("functions", &rust_signatures(FUNCTIONS), &h.functions);
}

#[test]
fn callbacks_match_the_header() {
    let h = header();
    assert_eq!(h.callbacks.len(), 4, "parsed {:?}", h.callbacks.keys());
    same("callback types", &rust_signatures(CALLBACKS), &h.callbacks);
}

#[test]
fn types_match_the_header() {
    let h = header();
    let mut opaque: Vec<String> = OPAQUE.iter().map(|s| s.to_string()).collect();
    let mut c_opaque = h.opaque.clone();
    opaque.sort();
    c_opaque.sort();
    assert_eq!(opaque, c_opaque);
    let rust = STRUCTS
        .iter()
        .map(|(n, f)| (n.to_string(), rust_params(f)))
        .collect();
    same("structs", &rust, &h.structs);
}

/// The comparison itself: a drifted copy of the header is caught, naming what drifted.
#[test]
fn a_drifted_header_is_caught() {
    let text = std::fs::read_to_string(header_path()).unwrap();
    for (from, to, needle) in [
        (
            "TTPO_STATUS_PANIC = 12",
            "TTPO_STATUS_PANIC = 13",
            "TTPO_STATUS_PANIC",
        ),
        (
            "ttpo_options_set_tile_size(ttpo_options *options, uint32_t unet, uint32_t vae);",
            "ttpo_options_set_tile_size(ttpo_options *options, uint32_t vae, uint32_t unet);",
            "ttpo_options_set_tile_size",
        ),
        (
            "ttpo_job_size(const ttpo_job *job,",
            "ttpo_job_size(ttpo_job *job,",
            "ttpo_job_size",
        ),
        (
            "uint32_t ttpo_backends(void);",
            "uint32_t ttpo_backends(void);\nuint32_t ttpo_new_call(void);",
            "ttpo_new_call",
        ),
        ("  ptrdiff_t stride;", "  int32_t stride;", "ttpo_image"),
        (
            "typedef int32_t (*ttpo_cancel_fn)(void *user_data);",
            "typedef uint32_t (*ttpo_cancel_fn)(void *user_data);",
            "ttpo_cancel_fn",
        ),
    ] {
        assert!(
            text.contains(from),
            "the header no longer has {from:?}: update this test"
        );
        let h = parse_header(&text.replace(from, to));
        let caught = std::panic::catch_unwind(|| {
            same(
                "constants",
                &CONSTANTS.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
                &h.constants,
            );
            same("functions", &rust_signatures(FUNCTIONS), &h.functions);
            same("callbacks", &rust_signatures(CALLBACKS), &h.callbacks);
            let s = STRUCTS
                .iter()
                .map(|(n, f)| (n.to_string(), rust_params(f)))
                .collect();
            same("structs", &s, &h.structs);
        });
        let message = caught.expect_err(&format!("{needle}: drift not caught"));
        let message = message.downcast_ref::<String>().expect("an assert message");
        assert!(message.contains(needle), "{needle}: {message}");
    }
}

/// The C compiler's layout of `ttpo_image` equals Rust's.
#[test]
fn ttpo_image_layout_matches_the_c_compiler() {
    let dir = std::env::temp_dir().join(format!("ttpo-sys-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <stddef.h>\n#include \"ttpo.h\"\n\
         int main(void) { printf(\"%zu %zu %zu %zu %zu %zu %zu %zu\\n\", sizeof(ttpo_image), \
         _Alignof(ttpo_image), offsetof(ttpo_image, data), offsetof(ttpo_image, width), \
         offsetof(ttpo_image, height), offsetof(ttpo_image, stride), \
         offsetof(ttpo_image, format), offsetof(ttpo_image, layout)); return 0; }\n",
    )
    .unwrap();
    let exe = dir.join("layout");
    let include = header_path().parent().unwrap().to_path_buf();
    let st = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-I"])
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("a C compiler (cc)");
    assert!(st.success());
    let out = std::process::Command::new(&exe).output().unwrap();
    let c: Vec<usize> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    use std::mem::{align_of, offset_of, size_of};
    let rust = vec![
        size_of::<ttpo_image>(),
        align_of::<ttpo_image>(),
        offset_of!(ttpo_image, data),
        offset_of!(ttpo_image, width),
        offset_of!(ttpo_image, height),
        offset_of!(ttpo_image, stride),
        offset_of!(ttpo_image, format),
        offset_of!(ttpo_image, layout),
    ];
    assert_eq!(rust, c, "size, align, offsets: Rust vs C");
    std::fs::remove_dir_all(&dir).ok();
}
