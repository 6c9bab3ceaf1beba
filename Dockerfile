# Multi-stage build of ethproofs-daemon.
#
# The image carries only the daemon. cargo-zisk, the proving key and the GPU come from the host:
#   - install ZisK on the host (or a derived image) and mount it, e.g. -v $HOME/.zisk:/root/.zisk and
#     -v /usr/local/bin/cargo-zisk:/usr/local/bin/cargo-zisk:ro (CARGO_ZISK can point elsewhere);
#   - run with the NVIDIA container runtime (--gpus all) for GPU proving;
#   - mount the guest ELF (see guest-elf/README.md) and a volume for /app/output.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN cargo build --release --locked --bin ethproofs-daemon

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/ethproofs-daemon /usr/local/bin/ethproofs-daemon
COPY config ./config
COPY guest-elf ./guest-elf
VOLUME ["/app/output"]
ENTRYPOINT ["ethproofs-daemon"]
CMD ["--help"]
