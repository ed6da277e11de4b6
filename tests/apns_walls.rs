//! The wall between the client and the mock (DESIGN.md, "Walls"): the APNs client never imports
//! the mock, so one bug cannot pass on both sides.
#![cfg(feature = "apns")]

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_client_never_imports_the_mock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src").join("apns"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in ["crate::mock", "herald::mock", "super::super::mock"] {
            assert!(!text.contains(banned), "{} mentions {banned}", f.display());
        }
    }
}
