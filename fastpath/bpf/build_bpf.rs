// Included by the build scripts that compile an XDP program (fastpath's
// uplink, pktgen's generator): `bpf/NAME.c` to `$OUT_DIR/NAME.bpf.o` with
// clang for the BPF target.

fn build_bpf(name: &str) {
    let src = format!("bpf/{name}.c");
    println!("cargo:rerun-if-changed={src}");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join(format!("{name}.bpf.o"));
    let arch_inc = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{arch_inc}"))
        .args(["-c", &src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("clang (needed for the XDP programs; tools/deps.sh installs it): {e}"));
    assert!(status.success(), "clang failed to build {src}");
}
