//! `pulsedb`: the engine behind HTTP/JSON, MCP and a command line
//! (SERVER.md). Exit codes: 0 success, 1 failure (one line on stderr), 2
//! usage error.

mod data;
mod maintain;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use pulsedb::{BuiltinEmbedder, Config, Embedder, PulseHandle};

#[derive(Parser)]
#[command(
    name = "pulsedb",
    version,
    about = "Collective memory for AI agent swarms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on one port.
    Serve(serve::ServeArgs),
    /// Serve the MCP tools over stdio (for Claude Desktop, Cursor, any MCP host).
    Mcp {
        /// The database file (created when missing).
        #[arg(long)]
        db: PathBuf,
        /// Embed text with the built-in model, or not (tools that read text then say so).
        #[arg(long, value_enum, default_value = "builtin")]
        embedder: EmbedderChoice,
        /// Keep every vector in the index snapshots too: each session
        /// starts faster, the snapshots take 4 bytes a component more per
        /// experience.
        #[arg(long)]
        snapshot_vectors: bool,
    },
    /// Print the database's metadata and a table of its collectives.
    Info {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
    },
    /// Import experiences from JSON lines (one NewExperience a line).
    Import {
        /// The database file (created when missing).
        #[arg(long)]
        db: PathBuf,
        /// The collective to import into (created when missing).
        #[arg(long)]
        collective: String,
        /// Embed lines without an embedding with the built-in model, or not.
        #[arg(long, value_enum, default_value = "builtin")]
        embedder: EmbedderChoice,
        /// The JSON-lines file.
        file: PathBuf,
    },
    /// Export experiences as JSON lines, embeddings included.
    Export {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
        /// Only this collective (default: all).
        #[arg(long)]
        collective: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Search a collective by meaning with the built-in model.
    Search {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
        /// The collective to search.
        #[arg(long)]
        collective: String,
        /// How many results.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// The query text.
        text: String,
    },
    /// Verify the file: redb's integrity, every index entry against
    /// storage, the change log without gaps. Exit 0 only when all hold.
    Check {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
    },
    /// Compact the change log (entries past the retention) and the file.
    Compact {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
    },
}

/// Which embedder a command opens the database with.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum EmbedderChoice {
    /// all-MiniLM-L6-v2, from `$PULSEDB_MODEL_DIR` or `make model`'s folder.
    Builtin,
    /// None: clients send vectors.
    None,
}

/// Opens the database at `db` with the chosen embedder; also answers the
/// embedder's model id and dimension.
pub(crate) async fn open(
    db: &std::path::Path,
    embedder: EmbedderChoice,
    read_only: bool,
) -> pulsedb::Result<(PulseHandle, Option<(String, usize)>)> {
    let config = Config {
        read_only,
        ..Config::default()
    };
    open_with(db, embedder, config).await
}

/// [`open`] with a configuration of the caller's. Without an embedder, a
/// file of another dimension than the configured one opens with its own.
pub(crate) async fn open_with(
    db: &std::path::Path,
    embedder: EmbedderChoice,
    config: Config,
) -> pulsedb::Result<(PulseHandle, Option<(String, usize)>)> {
    match embedder {
        EmbedderChoice::None => match PulseHandle::open(db, config.clone()).await {
            Err(pulsedb::Error::Validation(pulsedb::ValidationError::DimensionMismatch {
                expected,
                ..
            })) => {
                let config = Config {
                    embedding_dimension: pulsedb::EmbeddingDimension::Custom(expected),
                    ..config
                };
                Ok((PulseHandle::open(db, config).await?, None))
            }
            other => Ok((other?, None)),
        },
        EmbedderChoice::Builtin => {
            let model = tokio::task::spawn_blocking(BuiltinEmbedder::locate)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            let about = (model.model_id().to_string(), model.dimension());
            let handle = PulseHandle::open_with_embedder(db, config, Arc::new(model)).await?;
            Ok((handle, Some(about)))
        }
    }
}

async fn mcp(
    db: &std::path::Path,
    embedder: EmbedderChoice,
    snapshot_vectors: bool,
) -> pulsedb::Result<()> {
    use rmcp::ServiceExt;
    let config = Config {
        index: pulsedb::IndexConfig {
            snapshot_vectors,
            ..pulsedb::IndexConfig::default()
        },
        ..Config::default()
    };
    let (handle, _) = open_with(db, embedder, config).await?;
    let tools = pulsedb::server::mcp::PulseTools::new(handle.clone());
    let served = async {
        let running = tools
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok::<(), pulsedb::Error>(())
    }
    .await;
    handle.close().await?;
    served
}

async fn info(db: &std::path::Path) -> pulsedb::Result<()> {
    let (handle, _) = open(db, EmbedderChoice::None, true).await?;
    let meta = handle.metadata();
    println!("file              {}", db.display());
    println!("instance          {}", handle.instance_id());
    println!("schema version    {}", meta.schema_version);
    println!("dimension         {}", meta.embedding_dimension);
    println!("change log at     {}", handle.get_current_sequence().await?);
    let collectives = handle.list_collectives().await?;
    println!();
    println!(
        "{:<36}  {:<24}  {:>11}  {:>8}  {:>9}  {:>8}",
        "collective", "name", "experiences", "archived", "relations", "insights"
    );
    for c in collectives {
        let s = handle.get_collective_stats(c.id).await?;
        println!(
            "{:<36}  {:<24}  {:>11}  {:>8}  {:>9}  {:>8}",
            c.id.to_string(),
            c.name,
            s.experience_count,
            s.archived_count,
            s.relation_count,
            s.insight_count
        );
    }
    handle.close().await
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Mcp {
            db,
            embedder,
            snapshot_vectors,
        } => mcp(&db, embedder, snapshot_vectors).await,
        Command::Info { db } => info(&db).await,
        Command::Import {
            db,
            collective,
            embedder,
            file,
        } => data::import(&db, &collective, &file, embedder).await,
        Command::Export {
            db,
            collective,
            out,
        } => data::export(&db, collective.as_deref(), out.as_ref()).await,
        Command::Search {
            db,
            collective,
            k,
            text,
        } => data::search(&db, &collective, k, &text).await,
        Command::Check { db } => maintain::check(&db).await,
        Command::Compact { db } => maintain::compact(&db).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pulsedb: {e}");
            ExitCode::FAILURE
        }
    }
}
