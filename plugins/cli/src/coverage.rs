//! Option coverage: every option of core's description (`ttpo::options::OPTIONS`) must be
//! reachable from every surface under its one name, or be listed in [`EXCLUDED`] with the
//! reason. It lives in the CLI crate because the CLI's flags are checked on clap's own
//! `Command` (not on text); the other surfaces are other languages, so their sources are
//! read as text: `ttpo_options_set_<name>` in the generated C header, the C++ method
//! `Options &<name>(` in `include/ttpo.hpp`, the C setter called by the GIMP plug-in, the
//! setter symbol the OFX plug-in loads.

#[cfg(test)]
mod tests {
    use crate::args::Cli;
    use clap::CommandFactory;
    use std::path::PathBuf;
    use ttpo::options::OPTIONS;

    /// The method's tuning parameters, which the host plug-ins leave at the engine's
    /// defaults.
    const METHOD_PARAMETERS: &[&str] = &[
        "prompt",
        "negative_prompt",
        "seeds_per_strength",
        "cfg_scale",
        "eta",
        "flow_guidance",
        "max_batch",
        "pad_mode",
        "fusion",
        "brisque_model",
        "clip_model",
        "iqa_model_dir",
        "metric_max_pixels",
        "alpha",
        "guidance",
        "t1",
        "t2",
        "d0",
        "refine_start",
        "memory_budget_mib",
        "unet_tile",
        "vae_tile",
        "tile_overlap",
        "restore_noise",
    ];

    /// Options a surface deliberately lacks, with the reason.
    const EXCLUDED: &[(&str, &[&str], &str)] = &[
        (
            "gimp",
            METHOD_PARAMETERS,
            "the GIMP dialog and its PDB procedure keep to what a painter chooses (preset, \
             strengths, seed, steps); the procedure's parameter list is a stable scripting \
             interface, so the method's parameters keep the engine's defaults there",
        ),
        (
            "ofx",
            METHOD_PARAMETERS,
            "the OFX effect exposes the per-shot choices (strengths, seed, steps, metrics); \
             a host saves every parameter in its projects, so the method's parameters keep \
             the engine's defaults there",
        ),
        (
            "gimp",
            &["restore_dir"],
            "the plug-in takes the engine's default folder ($TTPO_RESTORE_DIR, else \
             ~/.local/share/ttpo/restore), as the CLI without --restore-dir: where the network \
             files live is a per-machine setting, not a per-image choice for the dialog or \
             the PDB procedure's stable argument list",
        ),
        (
            "ofx",
            &["restore_dir"],
            "the effect takes the engine's default folder ($TTPO_RESTORE_DIR, else \
             ~/.local/share/ttpo/restore): a host saves every parameter in its projects, and \
             a machine's file location does not belong in a shared project",
        ),
        (
            "ofx",
            &["max_pixels"],
            "a host hands the effect one frame at its project size; the engine's default \
             bound (64 Mi pixels) applies",
        ),
    ];

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn read(rel: &str) -> String {
        std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Every file of `dir` whose name ends in one of `exts`, concatenated.
    fn sources(dir: &str, exts: &[&str]) -> String {
        let mut all = String::new();
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if exts.iter().any(|x| name.ends_with(x)) {
                all += &std::fs::read_to_string(e.path()).unwrap();
            }
        }
        all
    }

    fn excluded(surface: &str, name: &str) -> bool {
        EXCLUDED
            .iter()
            .any(|(s, names, _)| *s == surface && names.contains(&name))
    }

    /// Which options a surface lacks, given how to find one there.
    fn missing(surface: &str, has: impl Fn(&str) -> bool) -> Vec<String> {
        let mut problems = Vec::new();
        for o in OPTIONS {
            match (has(o.name), excluded(surface, o.name)) {
                (false, false) => problems.push(format!("{surface}: no mapping for {}", o.name)),
                (true, true) => problems.push(format!(
                    "{surface}: {} is mapped but listed as excluded (remove the exclusion)",
                    o.name
                )),
                _ => {}
            }
        }
        problems
    }

    fn c_setter(name: &str) -> String {
        format!("ttpo_options_set_{name}(")
    }

    #[test]
    fn every_option_has_a_c_setter() {
        let h = read("include/ttpo.h");
        let m = missing("c", |n| h.contains(&c_setter(n)));
        assert!(m.is_empty(), "{m:#?}");
    }

    #[test]
    fn every_option_has_a_cpp_method() {
        let hpp = read("include/ttpo.hpp");
        let m = missing("c++", |n| {
            hpp.contains(&format!("Options &{n}(")) && hpp.contains(&c_setter(n))
        });
        assert!(m.is_empty(), "{m:#?}");
    }

    /// Every job option is a flag of every job command, named after it, with its old
    /// spellings as aliases.
    #[test]
    fn every_option_has_a_cli_flag() {
        let cli = Cli::command();
        for cmd in ["refine", "candidates", "batch"] {
            let sub = cli.find_subcommand(cmd).expect(cmd);
            let m = missing("cli", |n| {
                let flag = n.replace('_', "-");
                sub.get_arguments()
                    .any(|a| a.get_long() == Some(flag.as_str()))
            });
            assert!(m.is_empty(), "{cmd}: {m:#?}");
            for o in OPTIONS {
                let arg = sub
                    .get_arguments()
                    .find(|a| a.get_long() == Some(o.name.replace('_', "-").as_str()))
                    .unwrap();
                let aliases = arg.get_all_aliases().unwrap_or_default();
                for alias in o.aliases.iter().filter(|a| !a.contains('.')) {
                    let want = alias.replace('_', "-");
                    assert!(
                        aliases.contains(&want.as_str()),
                        "{cmd} --{}: old spelling --{want} is not an alias",
                        o.name
                    );
                }
            }
        }
    }

    #[test]
    fn every_option_reaches_gimp_or_is_excluded() {
        let c = sources("plugins/gimp", &[".c", ".h"]);
        // Strengths go through the text setter (core's one parser).
        let m = missing("gimp", |n| {
            c.contains(&c_setter(n)) || (n == "strengths" && c.contains(&c_setter("strengths_str")))
        });
        assert!(m.is_empty(), "{m:#?}");
    }

    #[test]
    fn every_option_reaches_ofx_or_is_excluded() {
        let rs = sources("plugins/ofx/src", &[".rs"]);
        let loads = |n: &str| rs.contains(&format!("\"ttpo_options_set_{n}\""));
        let m = missing("ofx", |n| {
            loads(n) || (n == "strengths" && loads("strengths_str"))
        });
        assert!(m.is_empty(), "{m:#?}");
    }

    /// The checker itself: a surface that lacks an option is reported.
    #[test]
    fn a_missing_mapping_is_reported() {
        let m = missing("c", |n| n != "guidance");
        assert_eq!(m, vec!["c: no mapping for guidance".to_string()]);
        let m = missing("gimp", |n| n == "seed" || n == "alpha");
        assert!(
            m.iter().any(|p| p.contains("alpha is mapped but listed")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|p| p.contains("no mapping for steps")),
            "{m:?}"
        );
    }
}
