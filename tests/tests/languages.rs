//! One recipe, three languages: the counter written in Rust (`plugins/counter`), C
//! (`plugins/c-counter`, clang-19 + the bindings in `guest-sdk/c`) and AssemblyScript
//! (`plugins/as-counter`, a bare core module to the canonical ABI) pass the same behaviour test
//! on a 3-node ensemble.

use corral_client::{Client, ClientError, Consistency, DeployOptions, ServerError};
use corral_tests::toolchains::{build_as_counter, build_c_counter};
use corral_tests::{plugin_wasm, Cluster, NodeOpts};

async fn call(c: &Client, name: &str, input: &str) -> Result<String, ClientError> {
    c.plugin_call(name, input.as_bytes()).await.map(|(out, _)| String::from_utf8(out).unwrap())
}

async fn query_everywhere(c: &Cluster, name: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for id in c.ids() {
        let (v, _) = c.client_on(id)?.plugin_query(name, br#""get""#, Consistency::Linearizable).await?;
        out.push(String::from_utf8(v)?);
    }
    Ok(out)
}

/// The behaviour every counter must have.
async fn behaves_as_a_counter(c: &Cluster, name: &str) -> anyhow::Result<()> {
    let client = c.client()?;
    assert_eq!(query_everywhere(c, name).await?, vec!["0"; 3], "{name}: starts at 0");
    assert_eq!(call(&client, name, r#"{"add":5}"#).await?, "5", "{name}");
    assert_eq!(call(&client, name, r#"{"add":-2}"#).await?, "3", "{name}");
    assert_eq!(call(&client, name, r#"{"add":1000000}"#).await?, "1000003", "{name}");
    match call(&client, name, "bogus").await {
        Err(ClientError::Server(ServerError::PluginFailed { reason, .. })) => {
            assert!(reason.contains("bad input"), "{name}: {reason}")
        }
        other => panic!("{name}: bad input must fail the call, got {other:?}"),
    }
    assert_eq!(query_everywhere(c, name).await?, vec!["1000003"; 3], "{name}: every node, failed call changed nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_counter_in_rust_c_and_assemblyscript_behaves_the_same() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let builds = [
        ("counter-rust", plugin_wasm("counter")),
        ("counter-c", build_c_counter(dir.path())?),
        ("counter-as", build_as_counter(dir.path())?),
    ];
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let admin = c.client()?;
    for (name, wasm) in builds {
        admin.plugin_deploy(name, wasm, DeployOptions::default()).await.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        behaves_as_a_counter(&c, name).await?;
    }
    Ok(())
}
