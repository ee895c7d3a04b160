//! The stack as a Docker Compose file: the same images, commands, ports, volumes, health
//! checks and start order the engine uses, for people who would rather run
//! `docker compose up` or read what `devstack up` does.

use serde_json::{Map, Value, json};

use super::{Ready, Restart, Stack};
use crate::settings::NetworkMode;

/// The compose document (YAML) for `stack`; config files are mounted from `./<path>`.
pub fn document(stack: &Stack) -> String {
    let mut services = Map::new();
    for service in &stack.services {
        let mut s = Map::new();
        s.insert("image".into(), json!(service.image));
        s.insert("container_name".into(), json!(stack.container_name(&service.name)));
        if let Some(entrypoint) = &service.entrypoint {
            s.insert("entrypoint".into(), json!(entrypoint));
        }
        if !service.command.is_empty() {
            s.insert("command".into(), json!(service.command));
        }
        if let Some(user) = &service.user {
            s.insert("user".into(), json!(user));
        }
        if !service.env.is_empty() {
            let env: Map<String, Value> = service.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            s.insert("environment".into(), Value::Object(env));
        }
        match stack.network {
            NetworkMode::Host => {
                s.insert("network_mode".into(), json!("host"));
            }
            NetworkMode::Bridge if !service.ports.is_empty() => {
                let ports: Vec<String> = service
                    .ports
                    .iter()
                    .map(|p| format!("127.0.0.1:{}:{}", p.host, p.container))
                    .collect();
                s.insert("ports".into(), json!(ports));
            }
            NetworkMode::Bridge => {}
        }
        let mut volumes: Vec<String> = service
            .volumes
            .iter()
            .map(|v| format!("{}:{}", v.volume, v.target))
            .collect();
        volumes.extend(
            service
                .files
                .iter()
                .map(|f| format!("./{}:{}:ro", f.file.display(), f.target)),
        );
        if !volumes.is_empty() {
            s.insert("volumes".into(), json!(volumes));
        }
        let restart = match service.restart() {
            Restart::UnlessStopped => "unless-stopped".to_string(),
            Restart::OnFailure(n) => format!("on-failure:{n}"),
            Restart::No => "no".to_string(),
        };
        s.insert("restart".into(), json!(restart));
        if !service.ulimits.is_empty() {
            let limits: Map<String, Value> = service
                .ulimits
                .iter()
                .map(|u| (u.name.clone(), json!({"soft": u.soft, "hard": u.hard})))
                .collect();
            s.insert("ulimits".into(), Value::Object(limits));
        }
        if let Ready::Healthy(test) = &service.ready {
            s.insert(
                "healthcheck".into(),
                json!({"test": test, "interval": "2s", "timeout": "5s", "retries": 3}),
            );
        }
        if !service.depends_on.is_empty() {
            let deps: Map<String, Value> = service
                .depends_on
                .iter()
                .map(|dep| {
                    let condition = match stack.service(dep).map(|d| &d.ready) {
                        Some(Ready::Healthy(_)) => "service_healthy",
                        Some(Ready::Completed) => "service_completed_successfully",
                        _ => "service_started",
                    };
                    (dep.clone(), json!({"condition": condition}))
                })
                .collect();
            s.insert("depends_on".into(), Value::Object(deps));
        }
        s.insert(
            "labels".into(),
            json!({crate::engine::LABEL_PROJECT: stack.project, crate::engine::LABEL_SERVICE: service.name}),
        );
        services.insert(service.name.clone(), Value::Object(s));
    }
    let mut doc = Map::new();
    doc.insert("name".into(), json!(stack.project));
    doc.insert("services".into(), Value::Object(services));
    let volumes: Map<String, Value> = stack
        .volumes()
        .into_iter()
        .map(|v| {
            let name = stack.volume_name(&v);
            (v, json!({"name": name}))
        })
        .collect();
    if !volumes.is_empty() {
        doc.insert("volumes".into(), Value::Object(volumes));
    }
    if stack.network == NetworkMode::Bridge {
        doc.insert("networks".into(), json!({"default": {"name": stack.network_name()}}));
    }
    let yaml = serde_yaml::to_string(&Value::Object(doc)).expect("compose document serializes");
    format!("# Written by `devstack render`: the same stack `devstack up` starts.\n{yaml}")
}
