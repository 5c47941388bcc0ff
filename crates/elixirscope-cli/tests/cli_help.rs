//! The `--help` texts are snapshots: a change to the command line shows up here
//! and in the README at the same time. Refresh with `TRYCMD=overwrite cargo test`.

#[test]
fn help_texts() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}
