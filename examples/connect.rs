// Shared by the examples: the client config from $CORRAL_CONFIG, else ./.corral-dev/client.toml
// (what `corral dev` writes).

#[allow(dead_code)]
pub fn config() -> anyhow::Result<corral_client::ClientConfig> {
    use anyhow::Context;
    let path = std::env::var("CORRAL_CONFIG").unwrap_or_else(|_| ".corral-dev/client.toml".into());
    corral_client::ClientConfig::load(path.as_ref())
        .with_context(|| format!("loading {path} (is `corral dev` running?)"))
}
