//! Generates the tonic/prost code for proto/*.proto (needs protoc: Debian's protobuf-compiler).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/agent.proto", "proto/bgpd.proto"], &["proto"])?;
    Ok(())
}
