//! The committed IDL (`programs/ovpp/idl/ovpp.json`) must be what Anchor's IDL builder makes
//! of the program now, plus the `Epoch` account (see `add_epoch_account`). Set
//! `OVPP_UPDATE_IDL=1` to rewrite it after changing the interface.

use std::path::PathBuf;

use anchor_lang::{Discriminator, Space};
use anchor_lang_idl::build::IdlBuilder;
use anchor_lang_idl::types::{Idl, IdlAccount, IdlDefinedFields, IdlType, IdlTypeDef, IdlTypeDefTy};
use ovpp::state::Epoch;

#[test]
fn committed_idl_matches_the_program() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
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
    let mut idl = idl;
    add_epoch_account(&mut idl);
    let fresh = anchor_lang_idl::serde_json::to_string_pretty(&idl).expect("IDL serializes") + "\n";

    if std::env::var_os("OVPP_UPDATE_IDL").is_some() {
        std::fs::create_dir_all(committed_path.parent().unwrap()).unwrap();
        std::fs::write(&committed_path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: run `OVPP_UPDATE_IDL=1 cargo test -p ovpp-program-tests --test idl` and commit it",
        committed_path.display()
    );
}

/// Epoch accounts are created by the program's own code (`ovpp::pda`, which accepts an
/// address someone pre-funded) instead of an Anchor `init`, and no instruction reads one
/// back, so Anchor's builder no longer sees the type. Clients still read them
/// (`program.account.epoch`), so the IDL lists the account and its layout; the layout is
/// checked against the Rust struct (field names, and the size at the most signers).
fn add_epoch_account(idl: &mut Idl) {
    assert!(!idl.accounts.iter().any(|a| a.name == "Epoch"), "the builder lists Epoch now: remove add_epoch_account");
    let fields = serde_json::json!([
        { "name": "epoch", "type": "u64" },
        { "name": "root", "type": { "array": ["u8", 32] } },
        { "name": "cumulative_total", "type": "u64" },
        { "name": "leaf_count", "type": "u64" },
        { "name": "report_hash", "docs": ["sha256 of the published epoch report the root was computed from."], "type": { "array": ["u8", 32] } },
        { "name": "signers", "docs": ["The oracles whose signatures were verified, in instruction order; at most 8 (`MAX_ORACLES`)."], "type": { "vec": "pubkey" } },
        { "name": "posted_slot", "type": "u64" },
        { "name": "posted_at", "type": "i64" },
        { "name": "bump", "type": "u8" },
    ]);
    let ty: IdlTypeDef =
        serde_json::from_value(serde_json::json!({ "name": "Epoch", "type": { "kind": "struct", "fields": fields } })).unwrap();

    // Every field of the struct, by name (a new or renamed field fails to compile here).
    let Epoch { epoch: _, root: _, cumulative_total: _, leaf_count: _, report_hash: _, signers: _, posted_slot: _, posted_at: _, bump: _ } =
        Epoch {
            epoch: 0,
            root: [0; 32],
            cumulative_total: 0,
            leaf_count: 0,
            report_hash: [0; 32],
            signers: vec![],
            posted_slot: 0,
            posted_at: 0,
            bump: 0,
        };
    let IdlTypeDefTy::Struct { fields: Some(IdlDefinedFields::Named(named)) } = &ty.ty else { unreachable!() };
    assert_eq!(named.len(), 9);
    let size: usize = named.iter().map(|f| max_size(&f.ty, ovpp::state::MAX_ORACLES)).sum();
    assert_eq!(size, Epoch::INIT_SPACE, "the IDL's Epoch layout differs from ovpp::state::Epoch");

    idl.accounts.push(IdlAccount { name: "Epoch".into(), discriminator: Epoch::DISCRIMINATOR.to_vec() });
    idl.accounts.sort_by(|a, b| a.name.cmp(&b.name));
    idl.types.push(ty);
    idl.types.sort_by(|a, b| a.name.cmp(&b.name));
}

/// Borsh size of the IDL types `Epoch` uses, a vector holding `max_len` items.
fn max_size(ty: &IdlType, max_len: usize) -> usize {
    use anchor_lang_idl::types::IdlArrayLen;
    match ty {
        IdlType::U8 => 1,
        IdlType::U64 | IdlType::I64 => 8,
        IdlType::Pubkey => 32,
        IdlType::Array(item, IdlArrayLen::Value(n)) => n * max_size(item, max_len),
        IdlType::Vec(item) => 4 + max_len * max_size(item, max_len),
        other => panic!("no size for {other:?}"),
    }
}
