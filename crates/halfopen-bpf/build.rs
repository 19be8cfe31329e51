//! Build script: with the `bpf` feature, compiles `src/bpf/halfopen.bpf.c` with clang (target
//! bpf, CO-RE, BTF) and generates its libbpf skeleton into `$OUT_DIR/halfopen.skel.rs`
//! (libbpf-cargo's SkeletonBuilder). Without the feature it does nothing, so the crate builds on
//! machines without clang.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "bpf")]
    skeleton::build();
}

#[cfg(feature = "bpf")]
mod skeleton {
    use std::path::PathBuf;

    const SOURCE: &str = "src/bpf/halfopen.bpf.c";

    pub fn build() {
        for f in [SOURCE, "src/bpf/kernel.h", "src/bpf/events.h"] {
            println!("cargo:rerun-if-changed={f}");
        }
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("halfopen.skel.rs");
        let mut builder = libbpf_cargo::SkeletonBuilder::new();
        builder
            .source(SOURCE)
            .clang_args(["-Wall", "-Wno-unused-function", "-Werror"]);
        if let Some(clang) = std::env::var_os("HALFOPEN_BPF_CLANG") {
            builder.clang(clang);
        }
        println!("cargo:rerun-if-env-changed=HALFOPEN_BPF_CLANG");
        if let Err(e) = builder.build_and_generate(&out) {
            panic!(
                "halfopen-bpf: compiling {SOURCE} failed (feature `bpf` needs clang with the BPF target, \
                 libelf-dev, zlib1g-dev, pkg-config and a working rustfmt; set HALFOPEN_BPF_CLANG to pick a \
                 clang): {e:#}"
            );
        }
    }
}
