//! Every AWS call of the function goes over HTTPS through `https_client()`:
//! rustls with ring, trusting the system's root certificates. The other tests
//! talk plain HTTP to loopback, so this one stands up an HTTPS endpoint on
//! loopback with a certificate made for the test, trusted the way Lambda's
//! own roots are (through `SSL_CERT_FILE`, which the system root store
//! honours), and proves that a DynamoDB call completes over it, and that an
//! endpoint whose certificate nobody trusts is refused before any request
//! is sent.
//!
//! A test binary of its own: the root store is read once per process.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate for 127.0.0.1, signed by itself.
fn certificate() -> CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate")
}

/// An HTTPS endpoint on loopback that answers every request with an empty
/// `ListTables` page, and counts the requests that reached it.
async fn https_endpoint(certificate: &CertifiedKey<rcgen::KeyPair>) -> (String, Arc<AtomicUsize>) {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certificate.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![certificate.cert.der().clone()], key)
        .expect("server certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                // A refused handshake ends here, before any request.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The SDK's requests are small: the head and the body arrive
                // within the first reads; answer once the head is complete.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"TableNames":[]}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, requests)
}

#[tokio::test]
async fn aws_calls_go_over_tls_and_refuse_a_certificate_no_root_vouches_for() {
    let trusted = certificate();
    let roots = std::env::temp_dir().join(format!("async-api-tls-{}.pem", std::process::id()));
    std::fs::write(&roots, trusted.cert.pem()).expect("write roots");
    // SAFETY: the only test of this binary sets it before any client exists,
    // and nothing else reads the environment concurrently.
    unsafe { std::env::set_var("SSL_CERT_FILE", &roots) };

    let (url, requests) = https_endpoint(&trusted).await;
    let tables = support::dynamodb_client(&url)
        .list_tables()
        .send()
        .await
        .expect("ListTables over TLS");
    assert_eq!(tables.table_names(), &[] as &[String]);
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    let (url, requests) = https_endpoint(&certificate()).await;
    let err = support::dynamodb_client(&url)
        .list_tables()
        .send()
        .await
        .expect_err("an untrusted certificate");
    assert!(
        matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
        "{err:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 0, "no request got through");
    let _ = std::fs::remove_file(roots);
}
