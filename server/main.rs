use clap::Parser;

/// mimalloc instead of glibc's malloc: malloc/free were ~31% of an Ask's
/// server CPU (arena contention and consolidation across tokio workers).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // Logging starts in `cli::run`: `serve` sets it up from its config.
    witness::metrics::init(true);
    let code = witness::cli::run(witness::cli::Cli::parse()).await;
    std::process::exit(code);
}
