use clap::Parser;

#[tokio::main]
async fn main() {
    // Logging starts in `cli::run`: `serve` sets it up from its config.
    witness::metrics::init(true);
    let code = witness::cli::run(witness::cli::Cli::parse()).await;
    std::process::exit(code);
}
