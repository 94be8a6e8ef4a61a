//! Bookstore's gRPC contracts: the generated messages, clients and servers
//! of `bookstore.auth.v1` and `bookstore.books.v1`, plus the encoded file
//! descriptor set that serves server reflection.

pub use prost;
pub use prost_types;
pub use tonic;

/// The encoded `FileDescriptorSet` of every Bookstore .proto file (and the
/// well-known types they import), for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/bookstore_descriptor.bin"));

/// Users, passwords and tokens.
pub mod auth {
    /// Version 1 of the auth API.
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("bookstore.auth.v1");
    }
}

/// Per-user books.
pub mod books {
    /// Version 1 of the books API.
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("bookstore.books.v1");
    }
}

/// Converts a unix timestamp in microseconds into a protobuf `Timestamp`.
#[must_use]
pub fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        // The remainder is in 0..1_000_000, so the product fits in i32.
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}
