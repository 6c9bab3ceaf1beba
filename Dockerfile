# Multi-stage build of ethproofs-daemon.
#
# The image carries only the daemon. cargo-zisk, the proving key and the GPU come from the host:
#   - cargo-zisk and its proving key: install ZisK on the host (its installer puts both under ~/.zisk)
#     and mount that directory, e.g. -v $HOME/.zisk:/zisk:ro -e CARGO_ZISK=/zisk/bin/cargo-zisk
#     -e ZISK_EXTRA_ARGS="-g -k /zisk/provingKey" (or build a derived image FROM this one with ZisK in it);
#     cargo-zisk needs the glibc and CUDA runtime it was built against;
#   - the GPU: run with the NVIDIA container runtime (docker run --gpus all, or the Kubernetes device
#     plugin; see config/kubernetes.yaml);
#   - the guest ELF (see guest-elf/README.md): -v /opt/guest-elf:/guest-elf:ro -e ELF_PATH=/guest-elf/<file>;
#   - a volume for /app/output (inputs and proofs).
# With PROVER_BACKEND=coordinator none of cargo-zisk, the key or the GPU is needed here: set
# ZISK_COORDINATOR_URL to the coordinator (config/zisk-coordinator.service, config/kubernetes.yaml).
# Example (the settings from the commented template, filled in):
#   cp config/ethproofs-daemon.env.example ethproofs-daemon.env
#   docker run --gpus all --env-file ethproofs-daemon.env -p 4000:4000 \
#     -v $HOME/.zisk:/zisk:ro -v /opt/guest-elf:/guest-elf:ro -v /var/lib/ethproofs:/app/output ethproofs-daemon run
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml build.rs ./
# The coordinator's gRPC contract, compiled by build.rs in Rust (no protoc in the image).
COPY proto ./proto
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN cargo build --release --locked --bin ethproofs-daemon

FROM debian:bookworm-slim
# tini is PID 1: it reaps whatever cargo-zisk's helpers leave as zombies and forwards SIGTERM to the daemon.
# Debian's versions are not pinned: bookworm's security updates are wanted in every rebuild.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/ethproofs-daemon /usr/local/bin/ethproofs-daemon
COPY config ./config
COPY guest-elf ./guest-elf
VOLUME ["/app/output"]
ENTRYPOINT ["/usr/bin/tini", "--", "ethproofs-daemon"]
EXPOSE 4000
CMD ["run"]
