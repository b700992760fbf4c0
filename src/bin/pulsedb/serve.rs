//! `pulsedb serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use pulsedb::server::{self, ServerOptions};

use crate::EmbedderChoice;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The database file (created when missing).
    #[arg(long)]
    db: PathBuf,
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:7700")]
    addr: SocketAddr,
    /// Bearer token every route but /healthz requires.
    #[arg(long, env = "PULSEDB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Embed text with the built-in model, or take vectors only.
    #[arg(long, value_enum, default_value = "builtin")]
    embedder: EmbedderChoice,
    /// Serve reads only; writes answer 403.
    #[arg(long)]
    read_only: bool,
    /// Keep every vector in the index snapshots too (+4 bytes a component
    /// per experience): a restart reads the graph and its vectors from one
    /// file instead of reading every vector back from the records.
    #[arg(long)]
    snapshot_vectors: bool,
    /// Request body limit in bytes.
    #[arg(long, default_value_t = server::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// API requests answered at once; one more gets 429 with Retry-After.
    #[arg(long, default_value_t = server::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Pull committed changes from this node (`http://host:port`);
    /// repeatable. Each peer must also pull from this one for changes to
    /// flow both ways.
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    /// Seconds the change log keeps entries (default 7 days); never past
    /// what a peer still pulling has not taken.
    #[arg(long, value_name = "SECONDS")]
    change_log_retention: Option<u64>,
    /// Join the NATS JetStream cluster these servers run
    /// (`nats://host:port`; repeatable, any reachable one will do).
    #[arg(long = "nats", value_name = "URL")]
    nats: Vec<String>,
    /// The cluster's name: nodes with the same name share one stream.
    #[arg(long, default_value = "pulsedb", requires = "nats")]
    cluster: String,
    /// Hold only this collective (repeatable; default all): the node
    /// receives only their changes.
    #[arg(long = "hold", value_name = "COLLECTIVE_ID", requires = "nats")]
    hold: Vec<uuid::Uuid>,
    /// Most messages the cluster's stream keeps (when this node creates
    /// it; default no limit).
    #[arg(long, value_name = "N", requires = "nats")]
    stream_max_messages: Option<i64>,
    /// Bearer token sent to the peers (default: this server's --token).
    #[arg(long, env = "PULSEDB_PEER_TOKEN", hide_env_values = true)]
    peer_token: Option<String>,
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight, then closing the database");
}

pub(crate) async fn run(args: ServeArgs) -> pulsedb::Result<()> {
    // The engine admits as many calls as the server does, so an admitted
    // request never queues inside it.
    let max_in_flight = match args.max_in_flight {
        0 => server::DEFAULT_MAX_IN_FLIGHT,
        n => n,
    };
    let token = args.token.filter(|t| !t.is_empty());
    let peer_token = args.peer_token.filter(|t| !t.is_empty()).or(token.clone());
    let config = pulsedb::Config {
        read_only: args.read_only,
        max_in_flight,
        index: pulsedb::IndexConfig {
            snapshot_vectors: args.snapshot_vectors,
            ..pulsedb::IndexConfig::default()
        },
        replication: pulsedb::ReplicationConfig {
            peers: args
                .peers
                .into_iter()
                .map(|url| pulsedb::PeerConfig {
                    url,
                    token: peer_token.clone(),
                })
                .collect(),
            nats: (!args.nats.is_empty()).then(|| pulsedb::NatsConfig {
                urls: args.nats,
                cluster: args.cluster,
                collectives: (!args.hold.is_empty()).then(|| {
                    args.hold
                        .iter()
                        .map(|u| pulsedb::CollectiveId::from_bytes(*u.as_bytes()))
                        .collect()
                }),
                advertise: (args.addr.port() != 0).then(|| format!("http://{}", args.addr)),
                token: peer_token.clone(),
                max_messages: args.stream_max_messages,
            }),
            ..pulsedb::ReplicationConfig::default()
        },
        change_log: match args.change_log_retention {
            Some(secs) => pulsedb::ChangeLogConfig {
                retention: std::time::Duration::from_secs(secs),
            },
            None => pulsedb::ChangeLogConfig::default(),
        },
        ..pulsedb::Config::default()
    };
    let (db, embedder) = crate::open_with(&args.db, args.embedder, config).await?;
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(l) => l,
        Err(e) => {
            let _ = db.close().await;
            return Err(e.into());
        }
    };
    let local = listener.local_addr()?;
    println!("pulsedb listening on http://{local}");
    let options = ServerOptions {
        token,
        body_limit: args.body_limit,
        max_in_flight: args.max_in_flight,
        embedder,
        mcp_hosts: match args.addr.ip() {
            ip if ip.is_loopback() || ip.is_unspecified() => Vec::new(),
            ip => vec![ip.to_string()],
        },
    };
    server::serve(listener, db, options, shutdown_signal()).await
}
