//! Bookstore's load generator (`bookstore-bench`) and the two trivial servers
//! its figures are compared with (`echo-grpc`, `echo-http`).

pub mod rss;
pub mod stats;

/// The echo reference's wire types, client and server.
pub mod echo {
    /// Version 1.
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("bench.echo.v1");
    }
}

/// Frames `message` as a gRPC request body: the 5-byte prefix (no
/// compression, big-endian length) and the encoded message, as `h2load -d`
/// sends it.
pub fn grpc_frame(message: &impl prost::Message) -> anyhow::Result<Vec<u8>> {
    let body = message.encode_to_vec();
    let length = u32::try_from(body.len())?;
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(&body);
    Ok(framed)
}

/// Prints `report` as one line of JSON when `json`, else as `describe`
/// prints it for a person: what every command does with its result.
pub fn print_report<R: serde::Serialize>(report: &R, json: bool, describe: impl FnOnce(&R)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        describe(report);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_frame_is_the_flag_the_length_and_the_message() {
        let request = echo::v1::EchoRequest { message: "hi".into() };
        assert_eq!(grpc_frame(&request).unwrap(), vec![0, 0, 0, 0, 4, 0x0a, 2, b'h', b'i']);
    }
}
