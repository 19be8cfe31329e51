//! Generates the halfopen.v1 code from ../../proto with a vendored protoc,
//! so no protoc has to be installed on the build machine.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<_> = ["types", "ingest", "query"]
        .iter()
        .map(|f| proto_dir.join(format!("halfopen/v1/{f}.proto")))
        .collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().compile_with_config(config, &files, &[proto_dir])?;
    Ok(())
}
