# syntax=docker/dockerfile:1
# The operator's image: built with the Rust toolchain, run on distroless as a non-root user.
#   docker build -t retention-operator:dev .

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# The whole workspace (tests/apiserver is a member, so Cargo needs its manifest); .dockerignore
# leaves target/ and .git/ out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin retention-operator \
    && cp target/release/retention-operator /retention-operator

# glibc, libgcc and CA certificates (/etc/ssl/certs), nothing else; user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /retention-operator /retention-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/retention-operator"]
CMD ["run"]
