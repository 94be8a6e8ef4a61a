//! The ceiling for a gRPC call on this machine: a tonic unary echo with no
//! work, served like Bookstore's services (TCP_NODELAY, same profile).
//!   echo-grpc [ADDR=127.0.0.1:15061]

use bookstore_bench::echo::v1::echo_service_server::{EchoService, EchoServiceServer};
use bookstore_bench::echo::v1::{EchoRequest, EchoResponse};
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
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:15061".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo-grpc listening on {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}
