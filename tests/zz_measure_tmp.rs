use std::sync::Arc;
use std::time::Instant;
use mailsrv::core::identity::{MatchOptions, ReferenceIdentity};
use mailsrv::core::trust::TrustStore;
use mailsrv::core::verifier::{MailVerifier, client_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
fn env(n: &str) -> String { std::env::var(n).unwrap() }
#[tokio::test]
async fn phases() {
    let store = TrustStore::from_pem_file(std::path::Path::new(&env("MAILSRV_TEST_CA"))).unwrap();
    for port in [10465u16, 10993, 10995] {
      for nodelay in [true, false] {
        let mut rows = Vec::new();
        for _ in 0..7 {
            let v = Arc::new(MailVerifier::new(store.clone(), ReferenceIdentity::for_dns("mail.example.net").unwrap(), MatchOptions::default()).unwrap());
            let cfg = client_config(v).unwrap();
            let t0 = Instant::now();
            let tcp = tokio::net::TcpStream::connect(("::1", port)).await.unwrap();
            tcp.set_nodelay(nodelay).unwrap();
            let t1 = t0.elapsed();
            let mut tls = tokio_rustls::TlsConnector::from(cfg).connect("mail.example.net".try_into().unwrap(), tcp).await.unwrap();
            let t2 = t0.elapsed();
            let mut b = [0u8; 512];
            let n = tls.read(&mut b).await.unwrap();
            let t3 = t0.elapsed();
            let cmd: &[u8] = if port == 10465 { b"EHLO x\r\n" } else if port == 10993 { b"a NOOP\r\n" } else { b"NOOP\r\n" };
            tls.write_all(cmd).await.unwrap(); tls.flush().await.unwrap();
            let _ = tls.read(&mut b).await.unwrap();
            let t4 = t0.elapsed();
            let _ = n;
            rows.push(format!("tcp={:.1} hs={:.1} greet={:.1} cmd={:.1}", t1.as_secs_f64()*1e3, t2.as_secs_f64()*1e3, t3.as_secs_f64()*1e3, t4.as_secs_f64()*1e3));
        }
        eprintln!("PHASES {port} nodelay={nodelay}\n  {}", rows.join("\n  "));
      }
    }
}
