//! Compiles the vendored Prometheus protobuf definitions (proto/) with protox, a pure-Rust
//! protobuf compiler, because there is no `protoc` on the machines that build this crate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/remote.proto", "proto/types.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    // `bytes` fields as `Bytes`: chunk data is then a view into the frame, not a copy.
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
