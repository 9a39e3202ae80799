# syntax=docker/dockerfile:1
# The operator's image: built with the Rust toolchain, run on distroless as a non-root user.
#   docker build -t retention-operator:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t retention-operator:dev .
#
# Both base images are pinned by the digest of their multi-platform index, so that a rebuild of
# the same commit starts from the same bytes and a tag moved upstream cannot change what ships.
# The tag beside each digest says what it is meant to be. To take in a new Rust release or
# Debian's security updates, resolve the tag again and replace the digest (the "Digest:" line):
#   docker buildx imagetools inspect rust:1.95-slim-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
# Keep the build stage on bookworm: the runtime is Debian 12 (bookworm), and the binary must
# link against the glibc it runs on.

# The build stage runs on the builder's own platform and cross-compiles for the target: an
# emulated (QEMU) Rust build of the arm64 image takes hours, a cross build minutes.
FROM --platform=$BUILDPLATFORM rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS build
# Set by BuildKit: the platform being built for, and the one building it.
ARG TARGETARCH
ARG BUILDARCH
# The C compiler and linker for each target: ring compiles C through the cc crate, which reads
# CC_<triple>, and rustc links through the linker Cargo names per target. For the build
# platform's own target these are its native gcc under its triple name.
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc
# The Rust target of this platform, and a cross gcc with the target's glibc headers when it is
# not the builder's own (libc6-dev-*-cross is only recommended by the gcc package, and
# recommendations are not installed).
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; cross="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
      arm64) triple=aarch64-unknown-linux-gnu; cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      *) echo "unsupported target architecture: $TARGETARCH (amd64 and arm64 are built)" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends $cross; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$triple"; \
    echo "$triple" > /rust-target
WORKDIR /src
# The whole workspace (tests/apiserver is a member, so Cargo needs its manifest); .dockerignore
# leaves target/ and .git/ out.
COPY . .
# --no-default-features: developer-only Cargo features stay out of the image. The caches keep
# downloaded crates and build output between builds on the same builder.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    triple="$(cat /rust-target)" \
    && cargo build --release --locked --no-default-features --bin retention-operator --target "$triple" \
    && cp "target/$triple/release/retention-operator" /retention-operator

# glibc, libgcc and CA certificates (/etc/ssl/certs), nothing else; user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:adcd20c7b4c988b73cbfbddb26d2eee574571e6d7c9ffea29b3821e0690efb77
COPY --from=build /retention-operator /retention-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/retention-operator"]
CMD ["run"]
