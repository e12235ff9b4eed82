use clap::Parser;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WITNESS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let code = witness::cli::run(witness::cli::Cli::parse()).await;
    std::process::exit(code);
}
