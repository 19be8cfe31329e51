//! Test support: a real mutual-TLS handshake with rustls (ring provider, as tonic's `tls-ring`)
//! over a loopback TCP connection, the server requiring a client certificate issued by its CA.
//! Every wait is bounded (socket timeouts, an accept deadline).
#![allow(dead_code)] // each test binary uses a part

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use halfopen_identity::{load_tls_pem, TlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What each side saw.
#[derive(Debug)]
pub struct Outcome {
    /// Server: the client's certificate chain, or the handshake error.
    pub server: Result<Vec<CertificateDer<'static>>, io::Error>,
    /// Client: the server's certificate chain once the server's first application byte arrived,
    /// or the error.
    pub client: Result<Vec<CertificateDer<'static>>, io::Error>,
}

/// The rustls error inside an io::Error from `complete_io`, if any.
pub fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &[u8]) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(c.expect("CA PEM"))
            .expect("CA certificate accepted as a root");
    }
    Arc::new(roots)
}

fn chain_and_key(cert_pem: &[u8], key_pem: &[u8]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("cert PEM");
    (chain, PrivateKeyDer::from_pem_slice(key_pem).expect("key PEM"))
}

/// Server config: its own certificate, client certificates required and verified against `ca`.
pub fn server_config(files: &TlsFiles) -> Arc<ServerConfig> {
    let pem = load_tls_pem(files).expect("server TLS files");
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&pem.ca_pem), provider())
        .build()
        .expect("client verifier");
    let (chain, key) = chain_and_key(&pem.cert_pem, &pem.key_pem);
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .expect("server certificate and key"),
    )
}

/// Client config: trusts `ca` for the server, presents its own certificate.
pub fn client_config(files: &TlsFiles) -> Arc<ClientConfig> {
    let pem = load_tls_pem(files).expect("client TLS files");
    let (chain, key) = chain_and_key(&pem.cert_pem, &pem.key_pem);
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&pem.ca_pem))
            .with_client_auth_cert(chain, key)
            .expect("client certificate and key"),
    )
}

fn accept_within(listener: &TcpListener, deadline: Instant) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e),
        }
    }
}

fn drive<C, D>(conn: &mut C, sock: &mut TcpStream) -> io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    let deadline = Instant::now() + IO_TIMEOUT;
    while conn.is_handshaking() {
        let (r, w) = conn.complete_io(sock)?;
        if r == 0 && w == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed during the handshake",
            ));
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "handshake took too long"));
        }
    }
    Ok(())
}

/// Run one handshake on 127.0.0.1: the server side in a thread, the client here, dialling
/// `server_name`. After the handshake the server sends "ok" and the client reads it, so a
/// client certificate refused by the server shows on both sides.
pub fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>, server_name: &str) -> Outcome {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let server_thread = thread::spawn(move || -> Result<Vec<CertificateDer<'static>>, io::Error> {
        let mut sock = accept_within(&listener, Instant::now() + IO_TIMEOUT)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut conn = ServerConnection::new(server).map_err(io::Error::other)?;
        drive(&mut conn, &mut sock)?;
        let certs = conn.peer_certificates().map(|c| c.to_vec()).unwrap_or_default();
        conn.writer().write_all(b"ok")?;
        conn.complete_io(&mut sock)?;
        conn.send_close_notify();
        let _ = conn.complete_io(&mut sock);
        Ok(certs)
    });

    let client_result = (|| -> Result<Vec<CertificateDer<'static>>, io::Error> {
        let mut sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        let name = ServerName::try_from(server_name.to_string()).map_err(io::Error::other)?;
        let mut conn = ClientConnection::new(client, name).map_err(io::Error::other)?;
        drive(&mut conn, &mut sock)?;
        let mut buf = [0u8; 2];
        rustls::Stream::new(&mut conn, &mut sock).read_exact(&mut buf)?;
        assert_eq!(&buf, b"ok");
        Ok(conn.peer_certificates().map(|c| c.to_vec()).unwrap_or_default())
    })();
    let server_result = server_thread.join().expect("server thread panicked");
    Outcome {
        server: server_result,
        client: client_result,
    }
}
