//! Real `nats-server` processes for the tests (Debian's package, installed by
//! `scripts/setup.sh`): one JetStream server, or a cluster, on free loopback ports with their
//! storage in a temporary folder; killed on drop. A server restarted keeps its ports and its
//! storage, as a real restart does.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Option<Child>,
    /// Client port.
    pub addr: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsServer {
    /// A single JetStream server storing under `dir`.
    pub fn start(dir: &Path) -> Self {
        Self::spawn(dir, "solo", Vec::new())
    }

    /// [`start`](Self::start) with more `nats-server` flags (TLS, authentication).
    pub fn start_with(dir: &Path, flags: &[&str]) -> Self {
        Self::spawn(dir, "solo", flags.iter().map(|f| (*f).to_owned()).collect())
    }

    /// A JetStream cluster of `n` servers on loopback, each storing under its own folder of
    /// `dir`. Returned once every server accepts clients (the cluster may still be electing
    /// its JetStream leader; publishers retry until it has one).
    pub fn cluster(dir: &Path, n: usize) -> Vec<Self> {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let all_routes = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        (0..n)
            .map(|i| {
                Self::spawn(
                    dir,
                    &format!("n{i}"),
                    vec![
                        "--cluster_name".into(),
                        "callscribe-test".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{}", routes[i]),
                        "--routes".into(),
                        all_routes.clone(),
                    ],
                )
            })
            .collect()
    }

    fn spawn(dir: &Path, name: &str, extra: Vec<String>) -> Self {
        let store = dir.join(name);
        std::fs::create_dir_all(&store).unwrap();
        let port = free_port();
        let mut args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            store.display().to_string(),
            "--server_name".into(),
            name.into(),
        ];
        args.extend(extra);
        let mut server = Self {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            args,
            log: dir.join(format!("{name}.log")),
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("nats-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server runs (scripts/setup.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {}: {}",
                self.addr,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports with the same storage.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a consumer of the stream sees: each message's subject, `Nats-Msg-Id` and CloudEvent.
pub struct Received {
    pub subject: String,
    pub msg_id: String,
    pub event: serde_json::Value,
}

/// Reads every message of `stream` with a pull consumer of its own (an ephemeral one, from
/// the first message), waiting until the stream holds at least `at_least` messages (at most
/// `within`).
pub async fn read_stream(
    url: &str,
    stream: &str,
    at_least: usize,
    within: Duration,
) -> Vec<Received> {
    use async_nats::jetstream::consumer::pull;
    use futures::StreamExt;
    let deadline = Instant::now() + within;
    let client = loop {
        match async_nats::connect(url).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect to {url}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let js = async_nats::jetstream::new(client);
    let (handle, count) = loop {
        let found = match js.get_stream(stream).await {
            Ok(mut s) => match s.info().await {
                Ok(info) => Some(info.state.messages as usize),
                Err(_) => None,
            }
            .map(|n| (s, n)),
            Err(_) => None,
        };
        match found {
            Some((s, n)) if n >= at_least => break (s, n),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "stream {stream} holds {:?} messages, want at least {at_least}",
                    other.map(|(_, n)| n)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Retried: a cluster that just lost a node may still be electing its leaders.
    let consumer = loop {
        match handle
            .create_consumer(pull::Config {
                deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
                ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "no consumer on {stream}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let m = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("the stream's messages arrive")
            .expect("a message")
            .expect("a good message");
        let msg_id = m
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push(Received {
            subject: m.subject.to_string(),
            msg_id,
            event: serde_json::from_slice(&m.payload).expect("a JSON CloudEvent"),
        });
    }
    out
}
