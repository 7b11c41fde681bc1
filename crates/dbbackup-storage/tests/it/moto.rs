//! A real S3-compatible server (moto) on a free loopback port, and a TCP proxy in front of it
//! that a test can cut to simulate the server going away mid-upload.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct Moto {
    child: Child,
    pub(crate) port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts `moto_server` (installed by `scripts/test.sh`; `pip install 'moto[server]'`).
    pub(crate) fn start() -> Moto {
        let port = free_port();
        let args = [
            "-H".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
        ];
        // The `moto_server` script, or the same entry point through python3 when pip put the
        // script somewhere not on PATH.
        let child = Command::new("moto_server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .or_else(|_| {
                Command::new("python3")
                    .args([
                        "-c",
                        "import sys; from moto.server import main; sys.exit(main())",
                    ])
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            })
            .expect("moto is not installed: run ./scripts/test.sh or `pip install 'moto[server]'`");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = http(port, "GET", "/moto-api/", "") {
                if resp.starts_with("HTTP/1.") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    pub(crate) fn create_bucket(&self, name: &str) {
        let r = http(self.port, "PUT", &format!("/{name}"), "").unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "creating bucket {name}: {r}");
    }

    /// Incomplete multipart uploads in `bucket`.
    pub(crate) fn open_uploads(&self, bucket: &str) -> usize {
        let r = http(self.port, "GET", &format!("/{bucket}?uploads"), "").unwrap();
        r.matches("<UploadId>").count()
    }

    pub(crate) fn url(&self, bucket: &str, prefix: &str, extra: &str) -> String {
        url_for(self.port, bucket, prefix, extra)
    }
}

pub(crate) fn url_for(port: u16, bucket: &str, prefix: &str, extra: &str) -> String {
    format!(
        "s3://{bucket}/{prefix}?endpoint=http://127.0.0.1:{port}&region=us-east-1\
         &access_key_id=testing&secret_access_key=testing{extra}"
    )
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request (moto accepts unsigned requests for setup and inspection).
pub(crate) fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A TCP proxy on loopback that can be cut (all connections dropped, new ones refused) and
/// restored.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            up,
            conns,
            accept,
        }
    }

    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
