//! The committed IDL (`programs/ovpp/idl/ovpp.json`) must be what Anchor's IDL builder makes
//! of the program now. Set `OVPP_UPDATE_IDL=1` to rewrite it after changing the interface.

use std::path::PathBuf;

use anchor_lang_idl::build::IdlBuilder;

#[test]
fn committed_idl_matches_the_program() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let program = workspace.join("programs/ovpp");
    let committed_path = program.join("idl/ovpp.json");
    // The IDL build compiles the program with `idl-build` and other RUSTFLAGS, so it gets a
    // target directory of its own instead of invalidating the main one.
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    // anchor-lang-idl 0.1.4 turns RUSTUP_TOOLCHAIN into a literal `+{toolchain}` argument;
    // the active toolchain is the right one anyway. This binary runs this one test only.
    std::env::remove_var("RUSTUP_TOOLCHAIN");
    let idl = IdlBuilder::new()
        .program_path(program)
        .cargo_args(vec!["--locked".into(), "--target-dir".into(), target.join("idl").display().to_string()])
        .build()
        .expect("IDL build (run with ANCHOR_LOG=1 to see cargo's output)");
    let fresh = anchor_lang_idl::serde_json::to_string_pretty(&idl).expect("IDL serializes") + "\n";

    if std::env::var_os("OVPP_UPDATE_IDL").is_some() {
        std::fs::create_dir_all(committed_path.parent().unwrap()).unwrap();
        std::fs::write(&committed_path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: run `OVPP_UPDATE_IDL=1 cargo test -p ovpp-tests --test idl` and commit it",
        committed_path.display()
    );
}
