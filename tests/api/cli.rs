//! The command line as a customer's CI would use it.

use std::path::Path;
use std::process::Command;

fn encours(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_encours"))
        .args(args)
        .current_dir(dir)
        .env_remove("ENCOURS_DATABASE_URL")
        .output()
        .expect("run encours");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn copy_policies(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn policies_test_passes_on_the_shipped_set_and_fails_on_a_broken_copy() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = dir.path().join("shipped");
    copy_policies(&shipped);
    let (ok, text) = encours(&["policies", "test", "shipped"], dir.path());
    assert!(ok, "{text}");
    assert!(text.contains("deposit") && text.contains("pass"), "{text}");

    let broken = dir.path().join("broken");
    copy_policies(&broken);
    let path = broken.join("deposit.rhai");
    let source = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        source.replace("DEPOSIT_BAND_D = 30", "DEPOSIT_BAND_D = 25"),
    )
    .unwrap();
    let (ok, text) = encours(&["policies", "test", "broken"], dir.path());
    assert!(!ok, "a broken copy must fail: {text}");
    assert!(text.contains("FAIL"), "{text}");
}

#[test]
fn export_then_import_changes_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = encours(&["policies", "export", "out"], dir.path());
    assert!(ok, "{text}");
    let path = dir.path().join("out/terms.rhai");
    let source = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("// reviewed\n{source}")).unwrap();
    let (ok, text) = encours(
        &["policies", "import", "out", "--author", "alice"],
        dir.path(),
    );
    assert!(ok, "{text}");
    assert!(text.contains("terms: v2 submitted"), "{text}");
    assert_eq!(text.matches("unchanged").count(), 7, "{text}");
    let (ok, text) = encours(
        &[
            "policies",
            "import",
            "out",
            "--author",
            "alice",
            "--activate",
        ],
        dir.path(),
    );
    assert!(ok, "nothing changed, nothing to activate: {text}");
    let (ok, text) = encours(&["policies", "list"], dir.path());
    assert!(ok && text.contains("terms"), "{text}");
}
