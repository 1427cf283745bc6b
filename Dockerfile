# The promimport image: the scheduler and the workers run the same binary.
# Not built in this repository's CI: its machines have no container engine. Build and push it:
#   docker build -t REGISTRY/promimport:0.1.0 . && docker push REGISTRY/promimport:0.1.0
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin promimport

# distroless/cc: glibc and CA certificates, no shell, no package manager; runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/promimport /usr/local/bin/promimport
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/promimport"]
