use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    // Panic policy: an archive must not limp on with a half-dead task; log and abort.
    // Durable state is on disk before any acknowledgement, so an abort loses nothing acknowledged.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let filter = EnvFilter::try_new(env.get("RENKEI_LOG").map_or("info,sqlx=warn", String::as_str))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let cli = renkei::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(cli.run(env))
}
