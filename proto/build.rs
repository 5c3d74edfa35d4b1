//! Generates the tonic/prost code for proto/*.proto (needs protoc: Debian's protobuf-compiler).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        // Written by hand (src/best_path_batch.rs): it also carries pre-encoded paths.
        .extern_path(
            ".manul.bgpd.v1.BestPathBatch",
            "crate::best_path_batch::BestPathBatch",
        )
        .compile_protos(&["proto/agent.proto", "proto/bgpd.proto"], &["proto"])?;
    Ok(())
}
