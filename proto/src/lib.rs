//! Prism's gRPC contract: one service per data interface, generated at build time from
//! `proto/prism/**`. Packages are versioned (`prism.keyvalue.v1`, ...).

pub mod common {
    pub mod v1 {
        tonic::include_proto!("prism.common.v1");
    }
}

pub mod keyvalue {
    pub mod v1 {
        tonic::include_proto!("prism.keyvalue.v1");
    }
}

pub mod pubsub {
    pub mod v1 {
        tonic::include_proto!("prism.pubsub.v1");
    }
}

pub mod queue {
    pub mod v1 {
        tonic::include_proto!("prism.queue.v1");
    }
}

pub mod timeseries {
    pub mod v1 {
        tonic::include_proto!("prism.timeseries.v1");
    }
}

pub mod meta {
    pub mod v1 {
        tonic::include_proto!("prism.meta.v1");
    }
}

/// Encoded `FileDescriptorSet` of every Prism proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/prism_descriptor.bin"));

/// Error domain used in `google.rpc.ErrorInfo` details of every Prism error.
pub const ERROR_DOMAIN: &str = "prism.dev";

/// The request metadata key naming the namespace a call is for; servers and clients of
/// every language use this one name.
pub const NAMESPACE_HEADER: &str = "x-prism-namespace";
