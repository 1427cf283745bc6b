# The promimport image: the scheduler and the workers run the same binary, as a non-root user,
# with nothing beside it but the C runtime it links and CA certificates (no shell, no package
# manager), so the chart can keep the root filesystem read-only.
#
# It packs the release binary built on the host (`cargo build --release --locked --bin promimport`).
# BASE is any image with glibc, CA certificates and the user 65532: distroless's cc image where
# registries are reachable; scripts/image builds one from Debian's packages instead, on machines
# that pull no images, and builds this file on top of it:
#   scripts/image                                    # prints localhost/promimport:VERSION
#   cargo build --release --locked --bin promimport && \
#     docker build -t REGISTRY/promimport:0.1.0 . && docker push REGISTRY/promimport:0.1.0
ARG BASE=gcr.io/distroless/cc-debian12:nonroot
FROM ${BASE}
COPY target/release/promimport /usr/local/bin/promimport
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/promimport"]
