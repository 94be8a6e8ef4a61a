//! TLS end to end, as a deployment runs it: auth-service, books-service and
//! the gateway as separate processes with certificates from
//! `bookstore generate-dev-certs`, calling each other over TLS with service
//! certificates; checked with real clients (curl, grpcurl) as a user would,
//! and with a load running while every certificate is rotated.
//!
//! The grpcurl checks run where grpcurl is installed (skipped with a note
//! otherwise, unless `BOOKSTORE_README_REQUIRE_GRPCURL=1`); curl is required.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bookstore_proto::books::v1::ListBooksRequest;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_testing::eventually;
use bookstore_testing::grpc::with_token;
use bookstore_testing::net::free_addr;
use bookstore_testing::processes::{Process, auth_service_env, books_service_env};
use bookstore_tls::dev::{DevCa, Leaf};
use bookstore_tls::{ClientFiles, ClientTls};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BIN: &str = env!("CARGO_BIN_EXE_bookstore");
const PASSWORD: &str = "correct horse battery staple";

/// The three services as processes, over TLS on free ports, with the
/// certificates in `certs`.
struct TlsStack {
    dir: tempfile::TempDir,
    certs: PathBuf,
    gateway: SocketAddr,
    auth: SocketAddr,
    books: SocketAddr,
    processes: Vec<Process>,
}

impl TlsStack {
    /// `client_auth`: the services' `*_TLS_CLIENT_AUTH`.
    async fn start(client_auth: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        generate_dev_certs(&certs);
        let (gateway, auth, books) = (free_addr(), free_addr(), free_addr());
        let path = |name: &str| certs.join(name).display().to_string();
        let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());

        let mut auth_env = auth_service_env(auth, &sqlite("auth.db"), &dir.path().join("signing-key.pem"));
        auth_env.extend([
            ("AUTH_TLS_CERT", path("auth-service.pem")),
            ("AUTH_TLS_KEY", path("auth-service-key.pem")),
            ("AUTH_TLS_CLIENT_CA", path("ca.pem")),
            ("AUTH_TLS_CLIENT_AUTH", client_auth.to_owned()),
        ]);
        let mut books_env =
            books_service_env(books, &sqlite("books.db"), &format!("https://localhost:{}", auth.port()));
        books_env.extend([
            ("BOOKS_TLS_CERT", path("books-service.pem")),
            ("BOOKS_TLS_KEY", path("books-service-key.pem")),
            ("BOOKS_TLS_CLIENT_CA", path("ca.pem")),
            ("BOOKS_TLS_CLIENT_AUTH", client_auth.to_owned()),
            ("BOOKS_AUTH_TLS_CA", path("ca.pem")),
        ]);
        let gateway_env = vec![
            ("GATEWAY_LISTEN_ADDR", gateway.to_string()),
            ("GATEWAY_AUTH_URL", format!("https://localhost:{}", auth.port())),
            ("GATEWAY_BOOKS_URL", format!("https://localhost:{}", books.port())),
            ("GATEWAY_TLS_CERT", path("gateway.pem")),
            ("GATEWAY_TLS_KEY", path("gateway-key.pem")),
            ("GATEWAY_UPSTREAM_TLS_CA", path("ca.pem")),
            ("GATEWAY_UPSTREAM_TLS_CERT", path("gateway.pem")),
            ("GATEWAY_UPSTREAM_TLS_KEY", path("gateway-key.pem")),
        ];
        let processes = vec![
            Process::start(BIN, dir.path(), "auth-service", &["auth-service".to_owned()], &auth_env),
            Process::start(BIN, dir.path(), "books-service", &["books-service".to_owned()], &books_env),
            Process::start(BIN, dir.path(), "gateway", &["gateway".to_owned()], &gateway_env),
        ];
        let stack = Self { dir, certs, gateway, auth, books, processes };
        let ca = stack.cert("ca.pem");
        let readyz = format!("https://localhost:{}/readyz", stack.gateway.port());
        eventually(Duration::from_secs(30), || async {
            let probe = bookstore(&["probe", "--cacert", &ca, &readyz]);
            if probe.status.success() { Ok(()) } else { Err(format!("{}\n{}", text(&probe), stack.logs())) }
        })
        .await;
        stack
    }

    fn cert(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.gateway.port())
    }

    fn logs(&self) -> String {
        self.processes.iter().map(Process::log_tail).collect::<Vec<_>>().join("\n")
    }

    /// curl with the dev CA, and `args`.
    fn curl(&self, args: &[&str]) -> Output {
        curl(&[&["--cacert", &self.cert("ca.pem")], args].concat())
    }

    /// Registers `name` and logs in through the gateway: the token.
    fn register_and_log_in(&self, name: &str) -> String {
        let body = format!(r#"{{"name":"{name}","password":"{PASSWORD}"}}"#);
        let registered =
            self.curl(&["-X", "POST", &self.url("/register"), "-H", "content-type: application/json", "-d", &body]);
        assert!(text(&registered).contains("registered successfully"), "{}\n{}", text(&registered), self.logs());
        let login = self.curl(&["-X", "POST", &self.url("/login"), "-u", &format!("{name}:{PASSWORD}")]);
        let login: serde_json::Value =
            serde_json::from_slice(&login.stdout).unwrap_or_else(|_| panic!("{}", text(&login)));
        login["token"].as_str().unwrap().to_owned()
    }

    /// grpcurl with the dev CA, presenting `identity` (`NAME` for
    /// `NAME.pem` and `NAME-key.pem` in the certificates), if any.
    fn grpcurl_as(&self, identity: Option<&str>, args: &[&str]) -> Output {
        let ca = self.cert("ca.pem");
        let mut all = vec!["-cacert".to_owned(), ca];
        if let Some(name) = identity {
            all.extend(["-cert".to_owned(), self.cert(&format!("{name}.pem"))]);
            all.extend(["-key".to_owned(), self.cert(&format!("{name}-key.pem"))]);
        }
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        grpcurl(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A TLS client of the services with the dev CA, presenting `identity`
    /// (`NAME` for `NAME.pem` and `NAME-key.pem`), if any.
    fn client(&self, identity: Option<&str>, alpn: &[&[u8]]) -> ClientTls {
        let identity =
            identity.map(|name| (self.certs.join(format!("{name}.pem")), self.certs.join(format!("{name}-key.pem"))));
        ClientTls::load(&ClientFiles { ca: self.certs.join("ca.pem"), identity }, alpn).unwrap()
    }
}

fn generate_dev_certs(out: &Path) {
    let generated = bookstore(&["generate-dev-certs", "--out", out.to_str().unwrap()]);
    assert!(generated.status.success(), "{}", text(&generated));
}

fn bookstore(args: &[&str]) -> Output {
    std::process::Command::new(BIN).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn curl(args: &[&str]) -> Output {
    std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Whether grpcurl runs here; a note when it is skipped.
fn grpcurl_available() -> bool {
    let found =
        std::process::Command::new("grpcurl").arg("-version").output().is_ok_and(|output| output.status.success());
    let required = std::env::var("BOOKSTORE_README_REQUIRE_GRPCURL").is_ok_and(|value| value == "1");
    assert!(found || !required, "BOOKSTORE_README_REQUIRE_GRPCURL=1 but grpcurl is not on PATH");
    if !found {
        eprintln!("NOTE: grpcurl is not on PATH: its TLS checks are SKIPPED");
    }
    found
}

fn grpcurl(args: &[&str]) -> Output {
    std::process::Command::new("grpcurl").args(["-max-time", "10"]).args(args).output().unwrap()
}

/// The certificate a fresh TLS connection to `port` is served.
async fn served_certificate(client: &ClientTls, port: u16) -> Vec<u8> {
    let stream = client.connect("localhost", port, None).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn certificate_in(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

/// A TLS connection to `port` and the start of HTTP/2 on it: Ok once the
/// server's first frame arrives, else why not. (In TLS 1.3 a server's
/// refusal of the client's certificate arrives with the first read.)
async fn h2_handshake(client: &ClientTls, port: u16) -> Result<(), String> {
    let mut stream = client.connect("localhost", port, None).await.map_err(|error| error.to_string())?;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .map_err(|error| error.to_string())?;
    let mut buffer = [0; 9];
    match stream.read(&mut buffer).await {
        Ok(0) => Err("closed".to_owned()),
        Ok(_) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// `GET path` over a new TLS connection (HTTP/1.1): the status code.
async fn https_get(client: &ClientTls, port: u16, path: &str, token: &str) -> Result<u16, String> {
    let mut stream = client.connect("localhost", port, None).await.map_err(|error| error.to_string())?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nx-access-tokens: {token}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|error| error.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|error| error.to_string())?;
    let head = String::from_utf8_lossy(&response);
    head.split(' ').nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| format!("no status line: {head:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_serve_tls_to_curl_and_grpcurl_and_call_each_other_over_it() {
    let stack = TlsStack::start("optional").await;

    // The tutorial's REST journey over HTTPS: the gateway reaches both
    // services, and books-service reaches auth-service, over TLS.
    let token = stack.register_and_log_in("alice");
    let book = r#"{"name":"Dune","Author":"Frank Herbert","Publisher":"Chilton","book_prize":9}"#;
    let created = stack.curl(&[
        "-X",
        "POST",
        &stack.url("/book"),
        "-H",
        &format!("x-access-tokens: {token}"),
        "-H",
        "content-type: application/json",
        "-d",
        book,
    ]);
    assert!(text(&created).contains("new books created"), "{}\n{}", text(&created), stack.logs());
    let books = stack.curl(&[&stack.url("/books"), "-H", &format!("x-access-tokens: {token}")]);
    assert!(text(&books).contains("Dune"), "{}", text(&books));
    // HTTP/2 by ALPN too.
    let http2 =
        stack.curl(&["--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", &stack.url("/readyz")]);
    assert_eq!(text(&http2), "2 200");

    // Plaintext is refused where TLS is on; so is a server certificate from
    // another CA, and an expired one.
    let plaintext = curl(&["-w", " %{http_code}", &format!("http://127.0.0.1:{}/readyz", stack.gateway.port())]);
    assert_eq!(
        text(&plaintext),
        r#"{"message":"this port speaks TLS only: use https:// instead of http://"} 400"#,
        "plain HTTP on the HTTPS port"
    );
    let other = stack.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other_ca = DevCa::generate("another CA").unwrap();
    std::fs::write(other.join("ca.pem"), other_ca.cert_pem()).unwrap();
    let wrong_ca = curl(&["--cacert", other.join("ca.pem").to_str().unwrap(), &stack.url("/readyz")]);
    assert_eq!(wrong_ca.status.code(), Some(60), "curl: the certificate cannot be verified: {}", text(&wrong_ca));

    // A client certificate from another CA, presented (rustls sends it
    // whatever CAs the server names), fails the handshake, even for the
    // service name it claims.
    let stranger = other_ca.issue(&Leaf::service("books-service", &[])).unwrap();
    std::fs::write(other.join("stranger.pem"), &stranger.cert_pem).unwrap();
    std::fs::write(other.join("stranger-key.pem"), &stranger.key_pem).unwrap();
    let identity = Some((other.join("stranger.pem"), other.join("stranger-key.pem")));
    let stranger =
        ClientTls::load(&ClientFiles { ca: stack.certs.join("ca.pem"), identity }, bookstore_tls::ALPN_H2).unwrap();
    let refused = h2_handshake(&stranger, stack.auth.port()).await.unwrap_err();
    assert!(refused.contains("UnknownCA") || refused.contains("BadCertificate"), "{refused}");
    h2_handshake(&stack.client(Some("books-service"), bookstore_tls::ALPN_H2), stack.auth.port()).await.unwrap();

    if grpcurl_available() {
        let (ca, auth) = (stack.cert("ca.pem"), format!("localhost:{}", stack.auth.port()));
        let books = format!("localhost:{}", stack.books.port());
        let listed = stack.grpcurl_as(None, &[&auth, "list"]);
        assert!(text(&listed).contains("bookstore.auth.v1.AuthService"), "{}", text(&listed));
        let listed = stack.grpcurl_as(Some("client"), &[&books, "list"]);
        assert!(text(&listed).contains("bookstore.books.v1.BooksService"), "{}", text(&listed));
        let plaintext = grpcurl(&["-plaintext", &auth, "list"]);
        assert!(!plaintext.status.success(), "{}", text(&plaintext));
        let wrong_ca = grpcurl(&["-cacert", other.join("ca.pem").to_str().unwrap(), &auth, "list"]);
        assert!(text(&wrong_ca).contains("certificate signed by unknown authority"), "{}", text(&wrong_ca));

        // A client certificate from another CA: grpcurl (Go's TLS) does not
        // even send it, as the server asks for certificates of its CA; the
        // call is then anonymous, and no service's.
        let stranger_cert = other.join("stranger.pem").display().to_string();
        let stranger_key = other.join("stranger-key.pem").display().to_string();
        let method = "bookstore.auth.v1.AuthService/ListRevocations";
        let stranger = grpcurl(&["-cacert", &ca, "-cert", &stranger_cert, "-key", &stranger_key, &auth, method]);
        assert!(text(&stranger).contains("Code: Unauthenticated"), "{}", text(&stranger));

        // The service-only RPC: no certificate, a developer's, a service's.
        let anonymous = stack.grpcurl_as(None, &[&auth, method]);
        assert!(text(&anonymous).contains("Code: Unauthenticated"), "{}", text(&anonymous));
        assert!(text(&anonymous).contains("present a service certificate"), "{}", text(&anonymous));
        let developer = stack.grpcurl_as(Some("client"), &[&auth, method]);
        assert!(text(&developer).contains("Code: PermissionDenied"), "{}", text(&developer));
        let service = stack.grpcurl_as(Some("books-service"), &[&auth, method]);
        assert!(service.status.success(), "{}", text(&service));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    generate_dev_certs(&certs);
    let ca = DevCa::load(
        &std::fs::read_to_string(certs.join("ca.pem")).unwrap(),
        &std::fs::read_to_string(certs.join("ca-key.pem")).unwrap(),
    )
    .unwrap();
    let mut leaf = Leaf::service("gateway", &[]);
    leaf.not_before -= time::Duration::days(30);
    leaf.not_after = leaf.not_before + time::Duration::days(1);
    let expired = ca.issue(&leaf).unwrap();
    std::fs::write(certs.join("expired.pem"), &expired.cert_pem).unwrap();
    std::fs::write(certs.join("expired-key.pem"), &expired.key_pem).unwrap();
    let gateway = free_addr();
    let env = vec![
        ("GATEWAY_LISTEN_ADDR", gateway.to_string()),
        ("GATEWAY_TLS_CERT", certs.join("expired.pem").display().to_string()),
        ("GATEWAY_TLS_KEY", certs.join("expired-key.pem").display().to_string()),
    ];
    let process = Process::start(BIN, dir.path(), "gateway", &["gateway".to_owned()], &env);
    let url = format!("https://localhost:{}/healthz", gateway.port());
    let ca_file = certs.join("ca.pem");
    let refused = eventually(Duration::from_secs(30), || async {
        let answer = curl(&["--cacert", ca_file.to_str().unwrap(), &url]);
        // 7: not listening yet.
        if answer.status.code() == Some(7) {
            Err(format!("{}\n{}", text(&answer), process.log_tail()))
        } else {
            Ok(answer)
        }
    })
    .await;
    assert_eq!(refused.status.code(), Some(60), "{}", text(&refused));
    assert!(text(&refused).contains("expired"), "{}", text(&refused));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_requires_a_client_certificate_for_every_call() {
    let stack = TlsStack::start("required").await;
    // The gateway presents its certificate, so the REST API works.
    let token = stack.register_and_log_in("strict");
    assert!(!token.is_empty());
    let anonymous = stack.client(None, bookstore_tls::ALPN_H2);
    for port in [stack.auth.port(), stack.books.port()] {
        let refused = h2_handshake(&anonymous, port).await.unwrap_err();
        assert!(refused.contains("CertificateRequired"), "{refused}");
        h2_handshake(&stack.client(Some("client"), bookstore_tls::ALPN_H2), port).await.unwrap();
    }
    if grpcurl_available() {
        let auth = format!("localhost:{}", stack.auth.port());
        let without = stack.grpcurl_as(None, &[&auth, "list"]);
        assert!(!without.status.success(), "{}", text(&without));
        let with = stack.grpcurl_as(Some("client"), &[&auth, "list"]);
        assert!(with.status.success(), "{}", text(&with));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_of_all_three_rotate_under_load_with_no_failed_call() {
    let stack = TlsStack::start("optional").await;
    let token = stack.register_and_log_in("rotor");
    let https = stack.client(None, &[b"http/1.1"]);
    let grpc = stack.client(Some("client"), bookstore_tls::ALPN_H2);
    let mut before = Vec::new();
    for addr in [stack.gateway, stack.auth, stack.books] {
        before.push(served_certificate(&https, addr.port()).await);
    }

    // The load: REST reads, each on a new HTTPS connection (so each is a
    // handshake with whatever certificate is current), and gRPC reads on
    // one long-lived connection and on new ones.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::<String>::new())));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        let (https, grpc, token) = (https.clone(), grpc.clone(), token.clone());
        let (gateway, books) = (stack.gateway.port(), stack.books.port());
        load.push(tokio::spawn(async move {
            let endpoint = tonic::transport::Endpoint::from_shared(format!("https://localhost:{books}")).unwrap();
            let long_lived =
                BooksServiceClient::new(endpoint.connect_with_connector_lazy(grpc.connector(None).unwrap()));
            while !stop.load(Ordering::Relaxed) {
                let outcome = match worker % 2 {
                    0 => https_get(&https, gateway, "/books", &token)
                        .await
                        .and_then(|code| if code == 200 { Ok(()) } else { Err(format!("GET /books: {code}")) }),
                    _ => {
                        let fresh = BooksServiceClient::new(
                            endpoint.connect_with_connector_lazy(grpc.connector(None).unwrap()),
                        );
                        let mut outcome = Ok(());
                        for mut client in [long_lived.clone(), fresh] {
                            if let Err(status) =
                                client.list_books(with_token(&token, ListBooksRequest::default())).await
                            {
                                outcome = Err(format!("ListBooks: {status:?}"));
                            }
                        }
                        outcome
                    }
                };
                match outcome {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(error) => {
                        failed.lock().unwrap().push(error);
                        0
                    }
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Rotate: every leaf certificate issued anew by the same CA; SIGHUP to
    // the services reloads at once (the file check would within seconds).
    generate_dev_certs(&stack.certs);
    for process in &stack.processes {
        let pid = process.child.id().unwrap();
        assert!(std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap().success());
    }
    for (addr, name) in [(stack.gateway, "gateway"), (stack.auth, "auth-service"), (stack.books, "books-service")] {
        let expected = certificate_in(&stack.certs.join(format!("{name}.pem")));
        eventually(Duration::from_secs(10), || async {
            if served_certificate(&https, addr.port()).await == expected {
                Ok(())
            } else {
                Err(format!("{name} still serves its old certificate\n{}", stack.logs()))
            }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let failed = std::mem::take(&mut *failed.lock().unwrap());
    let done = done.load(Ordering::Relaxed);
    eprintln!("rotation under load: {done} calls succeeded, {} failed", failed.len());
    assert!(failed.is_empty(), "failed calls during the rotation: {failed:?}\n{}", stack.logs());
    assert!(done > 20, "too little load to mean anything: {done}");
    for (index, addr) in [stack.gateway, stack.auth, stack.books].iter().enumerate() {
        assert_ne!(served_certificate(&https, addr.port()).await, before[index], "{addr}: not rotated");
    }
    // The services still call each other (with their new client
    // certificates on new connections): a new user's journey works.
    assert!(!stack.register_and_log_in("after-rotation").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_all_in_one_with_tls_dir_serves_tls_everywhere_and_picks_up_new_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    generate_dev_certs(&certs);
    let (gateway, auth, books, metrics) = (free_addr(), free_addr(), free_addr(), free_addr());
    let args: Vec<String> = [
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--tls-dir",
        certs.to_str().unwrap(),
        "--gateway-addr",
        &gateway.to_string(),
        "--auth-addr",
        &auth.to_string(),
        "--books-addr",
        &books.to_string(),
        "--gateway-metrics-addr",
        &metrics.to_string(),
        "--auth-metrics-addr",
        "127.0.0.1:0",
        "--books-metrics-addr",
        "127.0.0.1:0",
    ]
    .map(str::to_owned)
    .to_vec();
    let process = Process::start(BIN, dir.path(), "bookstore", &args, &[]);
    let ca = certs.join("ca.pem").display().to_string();
    let readyz = format!("https://localhost:{}/readyz", gateway.port());
    eventually(Duration::from_secs(30), || async {
        let probe = bookstore(&["probe", "--cacert", &ca, &readyz]);
        if probe.status.success() { Ok(()) } else { Err(format!("{}\n{}", text(&probe), process.log_tail())) }
    })
    .await;
    // Every listener: HTTPS, gRPC over TLS, metrics over HTTPS.
    for (target, service) in [(auth, "bookstore.auth.v1.AuthService"), (books, "bookstore.books.v1.BooksService")] {
        let probe = bookstore(&["probe", "--cacert", &ca, &format!("grpcs://localhost:{}/{service}", target.port())]);
        assert!(probe.status.success(), "{}", text(&probe));
        let plaintext = bookstore(&["probe", &format!("grpc://127.0.0.1:{}/{service}", target.port())]);
        assert!(!plaintext.status.success(), "{}", text(&plaintext));
    }
    let scraped = curl(&["--cacert", &ca, &format!("https://localhost:{}/metrics", metrics.port())]);
    assert!(text(&scraped).contains("# HELP"), "{}", text(&scraped));

    // New certificates are served without a signal: the files are watched.
    let client = ClientTls::load(&ClientFiles { ca: certs.join("ca.pem"), identity: None }, &[b"http/1.1"]).unwrap();
    let before = served_certificate(&client, gateway.port()).await;
    generate_dev_certs(&certs);
    let expected = certificate_in(&certs.join("gateway.pem"));
    assert_ne!(before, expected);
    eventually(Duration::from_secs(10), || async {
        if served_certificate(&client, gateway.port()).await == expected { Ok(()) } else { Err(process.log_tail()) }
    })
    .await;
}
