//! The ceiling for a gRPC call on this machine: a tonic unary echo with no
//! work, served like Bookstore's services (TCP_NODELAY, same profile).
//!   echo-grpc [ADDR=127.0.0.1:15061] [--coalesced-writes]
//! With `--coalesced-writes`, each connection's writes are gathered as
//! Bookstore's listeners gather them (`bookstore_runtime::CoalescedWrites`):
//! the ceiling for a service that does the same.

use bookstore_bench::echo::v1::echo_service_server::{EchoService, EchoServiceServer};
use bookstore_bench::echo::v1::{EchoRequest, EchoResponse};
use futures::TryStreamExt as _;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse { message: request.into_inner().message }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let coalesced = arguments.iter().any(|argument| argument == "--coalesced-writes");
    let addr = arguments.iter().find(|argument| !argument.starts_with("--")).map_or("127.0.0.1:15061", String::as_str);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("echo-grpc listening on {} (coalesced writes: {coalesced})", listener.local_addr()?);
    let router = tonic::transport::Server::builder().add_service(EchoServiceServer::new(Echo));
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    if coalesced {
        router.serve_with_incoming(incoming.map_ok(bookstore_runtime::CoalescedWrites::new)).await?;
    } else {
        router.serve_with_incoming(incoming).await?;
    }
    Ok(())
}
