//! The code generated from `proto/` by `build.rs`: the coordinator's messages and client (and
//! the server half, which only the tests' fake coordinator uses), and the gRPC health service.
//! Nothing outside [`super`] sees these types: the rest of the daemon speaks
//! [`super::JobEnd`], [`super::Phase`] and [`super::CoordError`].

#![allow(dead_code, clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

pub mod v1 {
    tonic::include_proto!("zisk.coordinator.v1");
}

pub mod health {
    tonic::include_proto!("grpc.health.v1");
}
