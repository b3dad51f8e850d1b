//! The container image and the Compose deployment keep their promises. This machine has no
//! container engine, so the files are checked for what they must say — every image pinned,
//! a non-root runtime without compilers, a health check on every long-running service,
//! start order gated on health and on the one-shot migration, credentials only through
//! `secrets:`, observability behind its profile — and the same topology runs as local
//! processes from the same `.env`: the migration step, then the replicas it names, each
//! healthy by the same `aegis health` check the image uses.
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, path::Path, process::Command};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `deploy/compose/.env` as a map.
fn env_file() -> BTreeMap<String, String> {
    std::fs::read_to_string(root().join("deploy/compose/.env"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// `${VAR}` replaced from `.env`; an unknown variable fails the test.
fn substitute(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').unwrap() + i;
        let name = &rest[i + 2..end];
        out.push_str(
            env.get(name)
                .unwrap_or_else(|| panic!("${{{name}}} is not in .env")),
        );
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn pinned(image: &str) -> bool {
    let Some((_, tag)) = image.rsplit_once(':') else {
        return false;
    };
    tag != "latest" && tag.chars().any(|c| c.is_ascii_digit())
}

#[test]
fn the_dockerfile_builds_from_the_lockfile_and_runs_unprivileged_without_compilers() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = text.split("\nFROM ").skip(1).collect();
    assert!(stages.len() >= 2, "multi-stage");
    for s in &stages {
        let image = s.split_whitespace().next().unwrap();
        assert!(pinned(image), "`{image}` is not pinned to a version");
    }
    assert!(
        text.contains("cargo build --release --locked"),
        "the build uses the lockfile as is"
    );
    let runtime = stages.last().unwrap();
    assert!(
        !runtime.starts_with("rust:"),
        "the runtime is not the toolchain image"
    );
    for tool in ["cargo", "rustc", "gcc", "build-essential", "clang"] {
        assert!(
            !runtime.contains(&format!("install -y --no-install-recommends {tool}"))
                && !runtime.contains(&format!(" {tool} ")),
            "`{tool}` in the runtime stage"
        );
    }
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime sets a user");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "the runtime user is not root");
    assert!(
        runtime.contains("HEALTHCHECK"),
        "the image has a health check"
    );
    assert!(
        runtime.contains("\"aegis\", \"health\""),
        "checked with `aegis health`"
    );
}

#[test]
fn the_compose_file_pins_images_gates_start_order_and_keeps_credentials_in_secrets() {
    let env = env_file();
    let raw = std::fs::read_to_string(root().join("deploy/compose/compose.yaml")).unwrap();
    let compose: Value = serde_yaml_ng::from_str(&substitute(&raw, &env)).unwrap();
    let services = compose["services"].as_object().unwrap();
    let declared = compose["secrets"].as_object().unwrap();
    for (name, s) in services {
        let image = s["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no image"));
        assert!(pinned(image), "{name}: `{image}` is not pinned");
        let one_shot = s["restart"].as_str() == Some("no");
        if !one_shot {
            assert!(
                s["healthcheck"]["test"].is_array(),
                "{name}: no health check"
            );
        }
        if let Some(deps) = s["depends_on"].as_object() {
            for (dep, how) in deps {
                let condition = how["condition"].as_str().unwrap_or_default();
                let one_shot_dep = services[dep]["restart"].as_str() == Some("no");
                let want = if one_shot_dep {
                    "service_completed_successfully"
                } else {
                    "service_healthy"
                };
                assert_eq!(condition, want, "{name} → {dep}");
            }
        }
        if let Some(vars) = s["environment"].as_object() {
            for (k, v) in vars {
                let secretish = ["PASSWORD", "SECRET", "TOKEN", "API_KEY"]
                    .iter()
                    .any(|w| k.to_uppercase().contains(w));
                if secretish {
                    assert!(
                        k.ends_with("_FILE")
                            && v.as_str().unwrap_or_default().starts_with("/run/secrets/"),
                        "{name}: `{k}` carries a credential in the environment"
                    );
                }
            }
        }
        for secret in s["secrets"].as_array().into_iter().flatten() {
            let secret = secret.as_str().unwrap();
            assert!(
                declared[secret]["file"].is_string(),
                "{name}: secret `{secret}` is not declared from a file"
            );
        }
        let observability = ["prometheus", "grafana", "otel-collector"].contains(&name.as_str());
        assert_eq!(
            s["profiles"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == "observability")),
            observability,
            "{name}: the observability profile"
        );
    }
    assert_eq!(
        services["gateway"]["depends_on"]["migrate"]["condition"],
        "service_completed_successfully"
    );
    // The gateway's config (with the database password) is itself a secret.
    assert!(
        services["gateway"]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "aegis.toml")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_runs_as_local_processes_from_the_same_env_file() {
    let Ok(url) = std::env::var("AEGIS_TEST_DATABASE_URL") else {
        eprintln!("skipped: AEGIS_TEST_DATABASE_URL is not set");
        return;
    };
    let env = env_file();
    let replicas: usize = env["AEGIS_REPLICAS"].parse().unwrap();
    // A database of its own, as the Compose `postgres` service gives the gateway.
    let admin = aegis_store::Store::connect(&url).await.unwrap();
    let db = format!("aegis_compose_{}", std::process::id());
    use sea_orm::ConnectionTrait as _;
    let conn = admin.connection();
    conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    conn.execute_unprepared(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let db_url = format!("{}/{db}", url.rsplit_once('/').unwrap().0);

    // The example config with the local database in place of the Compose one.
    let dir = std::env::temp_dir().join(format!("aegis-compose-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example =
        std::fs::read_to_string(root().join("deploy/compose/aegis.toml.example")).unwrap();
    let config = example
        .replace("postgres://aegis:PASSWORD@postgres:5432/aegis", &db_url)
        .replace("0.0.0.0:9464", "127.0.0.1:0")
        .replace(
            "http://otel-collector:4318/v1/traces",
            "http://127.0.0.1:9/v1/traces",
        );
    let path = dir.join("aegis.toml");
    std::fs::write(&path, config).unwrap();
    let aegis = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_aegis"))
            .args(args)
            .current_dir(&dir)
            .env("AEGIS_LOG", "error")
            .output()
            .unwrap()
    };

    // The one-shot migration, then the replicas, each healthy by the image's check.
    let migrated = aegis(&["migrate", "--config", path.to_str().unwrap()]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("migrated"));
    let mut servers = Vec::new();
    for _ in 0..replicas {
        servers.push(common::start_binary(&path, &dir));
    }
    for (_, base) in &servers {
        let health = aegis(&["health", "--url", base]);
        assert!(
            health.status.success(),
            "{base}: {}",
            String::from_utf8_lossy(&health.stderr)
        );
    }
    // A replica that is gone fails the same check.
    let (gone, base) = servers.pop().unwrap();
    drop(gone);
    assert!(!aegis(&["health", "--url", &base]).status.success());
    drop(servers);
    conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .ok();
    std::fs::remove_dir_all(&dir).ok();
}
