//! Builds the generator's XDP program (bpf/pktgen.c: the live-frames
//! generator) with clang for the BPF target; the object is embedded in the
//! binary.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/pktgen.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("pktgen.bpf.o");
    let arch_inc = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{arch_inc}"))
        .args(["-c", src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("clang (needed for the XDP program; tools/deps.sh installs it): {e}"));
    assert!(status.success(), "clang failed to build {src}");
}
