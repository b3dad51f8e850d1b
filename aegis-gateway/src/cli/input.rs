//! Reading what a command works on: text from a file or stdin, the pipeline of a config.

use std::{io::Read, path::Path};

use aegis::{Error, Pipeline, config::AegisConfig};
use aegis_gateway::bootstrap::{load_config, registry_for};

pub(super) fn read_input(file: Option<&Path>) -> Result<String, Error> {
    let bytes = match file {
        Some(p) => std::fs::read(p)
            .map_err(|e| Error::invalid_request(format!("cannot read {}: {e}", p.display())))?,
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Error::invalid_request(format!("cannot read stdin: {e}")))?;
            buf
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        Error::invalid_request(format!(
            "the input is not valid UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

pub(super) async fn build_pipeline(
    path: Option<&Path>,
    sinks: Vec<std::sync::Arc<dyn aegis::TelemetrySink>>,
) -> Result<(Pipeline, AegisConfig, String), Error> {
    let (cfg, source) = load_config(path)?;
    let pipeline =
        Pipeline::from_config_with(&registry_for(None).await?, &cfg, None, sinks).await?;
    Ok((pipeline, cfg, source))
}
