//! The hand-written OpenFX binding (`plugins/ofx/src/ofx.rs`, shared by the plug-in and this
//! host) against the real OpenFX 1.4 headers (`$TTPO_ASSETS/openfx/include`, fetched by
//! `scripts/fetch-assets.sh`): a C program compiled against the headers prints the size,
//! alignment, field offsets and field sizes of every struct the binding declares and the
//! value of every constant; they must equal Rust's. A field whose camelCase name the header lacks does not
//! compile, so names are checked too. Not checked: the argument types of the suites'
//! function pointers (the melt test runs the plug-in in a real host).

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};
use std::path::PathBuf;
use ttpo_ofx_host::ofx::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn openfx_include() -> PathBuf {
    let assets = std::env::var_os("TTPO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/assets"));
    let dir = assets.join("openfx/include");
    assert!(
        dir.join("ofxImageEffect.h").is_file(),
        "the OpenFX headers are missing in {}: run scripts/fetch-assets.sh (or set TTPO_ASSETS)",
        dir.display()
    );
    dir
}

/// `prop_set_pointer_n` -> `propSetPointerN`: the headers' spelling of a field.
fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The size of what `p` points to (a field's size, without a reference to uninit memory).
fn pointee_size<T>(_: *const T) -> usize {
    size_of::<T>()
}

/// A struct's layout as Rust sees it: C name, size, alignment, (C field name, offset, size)...
struct Layout {
    rust: &'static str,
    c: String,
    size: usize,
    align: usize,
    fields: Vec<(&'static str, String, usize, usize)>,
}

macro_rules! layouts {
    ($($ty:ident { $($field:ident),* $(,)? })*) => {
        vec![$(Layout {
            rust: stringify!($ty),
            c: if stringify!($ty).starts_with("Ofx") {
                stringify!($ty).to_string()
            } else {
                format!("Ofx{}", stringify!($ty))
            },
            size: size_of::<$ty>(),
            align: align_of::<$ty>(),
            fields: {
                let whole = std::mem::MaybeUninit::<$ty>::uninit();
                let p = whole.as_ptr();
                vec![$((
                    stringify!($field),
                    camel(stringify!($field)),
                    offset_of!($ty, $field),
                    // SAFETY: only the field's address is taken, nothing is read.
                    pointee_size(unsafe { std::ptr::addr_of!((*p).$field) }),
                )),*]
            },
        }),*]
    };
}

fn layouts() -> Vec<Layout> {
    layouts! {
        OfxRectD { x1, y1, x2, y2 }
        OfxHost { host, fetch_suite }
        OfxPlugin {
            plugin_api, api_version, plugin_identifier, plugin_version_major,
            plugin_version_minor, set_host, main_entry,
        }
        PropertySuiteV1 {
            prop_set_pointer, prop_set_string, prop_set_double, prop_set_int,
            prop_set_pointer_n, prop_set_string_n, prop_set_double_n, prop_set_int_n,
            prop_get_pointer, prop_get_string, prop_get_double, prop_get_int,
            prop_get_pointer_n, prop_get_string_n, prop_get_double_n, prop_get_int_n,
            prop_reset, prop_get_dimension,
        }
        ImageEffectSuiteV1 {
            get_property_set, get_param_set, clip_define, clip_get_handle,
            clip_get_property_set, clip_get_image, clip_release_image,
            clip_get_region_of_definition, abort, image_memory_alloc, image_memory_free,
            image_memory_lock, image_memory_unlock,
        }
        ParameterSuiteV1 {
            param_define, param_get_handle, param_set_get_property_set,
            param_get_property_set, param_get_value, param_get_value_at_time,
            param_get_derivative, param_get_integral, param_set_value,
            param_set_value_at_time, param_get_num_keys, param_get_key_time,
            param_get_key_index, param_delete_key, param_delete_all_keys, param_copy,
            param_edit_begin, param_edit_end,
        }
        MessageSuiteV1 { message }
        MessageSuiteV2 { message, set_persistent_message, clear_persistent_message }
        ProgressSuiteV1 { progress_start, progress_update, progress_end }
    }
}

/// Every constant of the binding with the header's macro for it.
fn constants() -> Vec<(&'static str, String)> {
    let s = |c: &std::ffi::CStr| c.to_str().unwrap().to_string();
    vec![
        ("kOfxStatOK", STAT_OK.to_string()),
        ("kOfxStatFailed", STAT_FAILED.to_string()),
        ("kOfxStatErrFatal", STAT_ERR_FATAL.to_string()),
        ("kOfxStatErrUnknown", STAT_ERR_UNKNOWN.to_string()),
        (
            "kOfxStatErrMissingHostFeature",
            STAT_ERR_MISSING_HOST_FEATURE.to_string(),
        ),
        ("kOfxStatErrUnsupported", STAT_ERR_UNSUPPORTED.to_string()),
        ("kOfxStatErrBadHandle", STAT_ERR_BAD_HANDLE.to_string()),
        ("kOfxStatErrBadIndex", STAT_ERR_BAD_INDEX.to_string()),
        ("kOfxStatErrValue", STAT_ERR_VALUE.to_string()),
        ("kOfxStatReplyYes", STAT_REPLY_YES.to_string()),
        ("kOfxStatReplyNo", STAT_REPLY_NO.to_string()),
        ("kOfxStatReplyDefault", STAT_REPLY_DEFAULT.to_string()),
        ("kOfxStatErrImageFormat", STAT_ERR_IMAGE_FORMAT.to_string()),
        ("kOfxImageEffectPluginApi", s(API_IMAGE_EFFECT)),
        ("kOfxPropertySuite", s(SUITE_PROPERTY)),
        ("kOfxImageEffectSuite", s(SUITE_IMAGE_EFFECT)),
        ("kOfxParameterSuite", s(SUITE_PARAMETER)),
        ("kOfxMessageSuite", s(SUITE_MESSAGE)),
        ("kOfxProgressSuite", s(SUITE_PROGRESS)),
        ("kOfxActionLoad", ACTION_LOAD.into()),
        ("kOfxActionUnload", ACTION_UNLOAD.into()),
        ("kOfxActionDescribe", ACTION_DESCRIBE.into()),
        (
            "kOfxImageEffectActionDescribeInContext",
            ACTION_DESCRIBE_IN_CONTEXT.into(),
        ),
        ("kOfxActionCreateInstance", ACTION_CREATE_INSTANCE.into()),
        ("kOfxActionDestroyInstance", ACTION_DESTROY_INSTANCE.into()),
        ("kOfxImageEffectActionRender", ACTION_RENDER.into()),
        ("kOfxImageEffectActionIsIdentity", ACTION_IS_IDENTITY.into()),
        (
            "kOfxImageEffectActionGetRegionsOfInterest",
            ACTION_GET_ROI.into(),
        ),
        (
            "kOfxImageEffectActionGetRegionOfDefinition",
            ACTION_GET_ROD.into(),
        ),
        ("kOfxActionPurgeCaches", ACTION_PURGE_CACHES.into()),
        ("kOfxImageEffectContextFilter", CONTEXT_FILTER.into()),
        ("kOfxImageEffectContextGeneral", CONTEXT_GENERAL.into()),
        ("kOfxImageEffectSimpleSourceClipName", s(CLIP_SOURCE)),
        ("kOfxImageEffectOutputClipName", s(CLIP_OUTPUT)),
        ("kOfxBitDepthByte", DEPTH_BYTE.into()),
        ("kOfxBitDepthShort", DEPTH_SHORT.into()),
        ("kOfxBitDepthFloat", DEPTH_FLOAT.into()),
        ("kOfxImageComponentRGBA", COMPONENT_RGBA.into()),
        ("kOfxImageComponentRGB", COMPONENT_RGB.into()),
        ("kOfxParamTypeString", s(PARAM_STRING)),
        ("kOfxParamTypeInteger", s(PARAM_INTEGER)),
        ("kOfxParamTypeDouble", s(PARAM_DOUBLE)),
        ("kOfxParamTypeChoice", s(PARAM_CHOICE)),
        ("kOfxMessageError", s(MESSAGE_ERROR)),
        ("kOfxMessageLog", s(MESSAGE_LOG)),
    ]
}

/// `pub struct`s and `pub const`s of the binding's source, so that one added there without a
/// check here fails.
fn declared(kind: &str) -> Vec<String> {
    let src = std::fs::read_to_string(root().join("plugins/ofx/src/ofx.rs")).unwrap();
    src.lines()
        .filter_map(|l| l.strip_prefix(&format!("pub {kind} ")))
        .map(|rest| {
            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Compiles and runs `main_body` against the headers; its output lines.
fn run_c(name: &str, main_body: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("ttpo-ofx-headers-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("probe.c");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n#include <stddef.h>\n#include \"ofxCore.h\"\n#include \"ofxProperty.h\"\n\
             #include \"ofxImageEffect.h\"\n#include \"ofxParam.h\"\n#include \"ofxMessage.h\"\n\
             #include \"ofxProgress.h\"\nint main(void) {{\n{main_body}return 0;\n}}\n"
        ),
    )
    .unwrap();
    let exe = dir.join("probe");
    let out = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(openfx_include())
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("a C compiler (cc)");
    assert!(
        out.status.success(),
        "the probe does not compile against the OpenFX headers (a field or constant the binding names is not in them?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::process::Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    std::fs::remove_dir_all(&dir).ok();
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_struct_has_the_headers_layout() {
    let layouts = layouts();
    let mut checked: Vec<String> = layouts.iter().map(|l| l.rust.to_string()).collect();
    let mut declared = declared("struct");
    checked.sort();
    declared.sort();
    assert_eq!(checked, declared, "every struct of ofx.rs is checked here");

    let mut body = String::new();
    let mut rust = Vec::new();
    for l in &layouts {
        body += &format!(
            "printf(\"{0} %zu %zu\\n\", sizeof({0}), _Alignof({0}));\n",
            l.c
        );
        rust.push(format!("{} {} {}", l.c, l.size, l.align));
        for (_, c_field, offset, size) in &l.fields {
            body += &format!(
                "printf(\"{0}.{1} %zu %zu\\n\", offsetof({0}, {1}), sizeof((({0} *)0)->{1}));\n",
                l.c, c_field
            );
            rust.push(format!("{}.{c_field} {offset} {size}", l.c));
        }
    }
    let c = run_c("layout", &body);
    let diffs: Vec<String> = rust
        .iter()
        .zip(&c)
        .filter(|(r, c)| r != c)
        .map(|(r, c)| format!("Rust {r:?}, C {c:?}"))
        .collect();
    assert_eq!(rust.len(), c.len());
    assert!(diffs.is_empty(), "layouts differ:\n{}", diffs.join("\n"));
}

#[test]
fn every_constant_has_the_headers_value() {
    let constants = constants();
    // Each Rust constant is checked once (by value; names differ in spelling).
    assert_eq!(
        constants.len(),
        declared("const").len(),
        "every const of ofx.rs is checked here"
    );
    let mut body = String::new();
    for (macro_name, value) in &constants {
        let format = if value.parse::<i64>().is_ok() {
            "%d"
        } else {
            "%s"
        };
        body += &format!("printf(\"{macro_name}={format}\\n\", {macro_name});\n");
    }
    let c: BTreeMap<String, String> = run_c("constants", &body)
        .into_iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    for (macro_name, value) in &constants {
        assert_eq!(Some(value), c.get(*macro_name), "{macro_name}");
    }
}
