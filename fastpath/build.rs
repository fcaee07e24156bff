//! Builds the XDP programs (bpf/uplink.c: the uplink filter; bpf/pktgen.c:
//! the generator) with clang for the BPF target; the objects are embedded
//! in the binary.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    for name in ["uplink", "pktgen"] {
        let src = format!("bpf/{name}.c");
        println!("cargo:rerun-if-changed={src}");
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join(format!("{name}.bpf.o"));
        let arch_inc = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
        let status = Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-I{arch_inc}"))
            .args(["-c", &src, "-o"])
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("clang (needed for the XDP programs; tools/deps.sh installs it): {e}"));
        assert!(status.success(), "clang failed to build {src}");
    }
}
