//! Mutual TLS: nothing but a certificate from the cluster CA gets in, and a client
//! certificate cannot speak for a node.

use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use corral_client::{Client, ClientConfig, ClientError};
use corral_tests::{corral_bin, raw, Cluster, NodeOpts};

fn certs(args: &[&str]) {
    let ok = std::process::Command::new(corral_bin()).args(args).output().expect("run corral certs");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_cluster_ca_gets_in() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let other = tempfile::tempdir()?;
    let o = other.path().to_str().expect("utf-8");
    certs(&["certs", "ca", "--dir", o]);
    certs(&["certs", "client", "--dir", o, "--name", "mallory"]);
    certs(&["certs", "node", "--dir", o, "--id", "2"]);

    // A client certificate from another CA (trusting the right CA for the server).
    let mallory = ClientConfig {
        cert: other.path().join("mallory.pem"),
        key: other.path().join("mallory.key"),
        timeout_ms: 3_000,
        multiplex: true,
        ..c.client_cfg.clone()
    };
    let res = Client::new(&mallory)?.get("/").await;
    assert!(matches!(res, Err(ClientError::Connect(_))), "foreign client got in: {res:?}");

    // A node certificate from another CA cannot join the peer traffic either. (With TLS 1.3
    // the client may finish its side of the handshake before the server refuses it, so the
    // refusal shows on first use.)
    let fake_node =
        ClientConfig { cert: other.path().join("node2.pem"), key: other.path().join("node2.key"), ..mallory };
    let status = corral_proto::frame::encode(&corral_proto::Request::Status)?;
    let refused = match raw::connect(&fake_node, &c.addr(1), corral_proto::ALPN_PEER).await {
        Err(_) => true,
        Ok(conn) => raw::exchange(&conn, &status).await.is_err(),
    };
    assert!(refused, "a node certificate from another CA was served");

    // Plaintext: there is no TCP listener, and non-QUIC datagrams get no answer.
    assert!(TcpStream::connect_timeout(&c.addr(1).parse()?, Duration::from_secs(1)).is_err());
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    udp.set_read_timeout(Some(Duration::from_millis(500)))?;
    udp.send_to(b"GET / HTTP/1.1\r\nHost: corral\r\n\r\n", c.addr(1))?;
    let mut buf = [0u8; 1500];
    assert!(udp.recv_from(&mut buf).is_err(), "a plaintext datagram got an answer");

    // A valid client certificate on the peer ALPN is refused: clients cannot speak for nodes.
    let conn = raw::connect(&c.client_cfg, &c.addr(1), corral_proto::ALPN_PEER).await?;
    assert!(raw::exchange(&conn, &status).await.is_err(), "a client spoke on the peer ALPN");

    // And the ensemble serves the real admin all along.
    c.client()?.create("/still-here", b"yes").await?;
    Ok(())
}
