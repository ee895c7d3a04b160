//! What runs: a [`Stack`] is services (image, command, ports, volumes, config files,
//! dependencies, how to tell it is ready) plus the config files they mount. The engine
//! starts it; [`render`] writes it as files and a compose file. [`devstack`] builds ours:
//! Dex ([`dex`]) and Signoz ([`signoz`]).

pub mod backends;
pub mod compose;
pub mod dex;
pub mod render;
pub mod signoz;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::identity::Identity;
use crate::settings::{NetworkMode, Settings};

/// A set of services started together under one project name.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Prefix of container, volume and network names.
    pub project: String,
    pub network: NetworkMode,
    pub services: Vec<Service>,
    /// Config files the services mount, relative to the folder they are written to.
    pub files: Vec<StackFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFile {
    pub path: PathBuf,
    pub contents: String,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// Which part of the stack (`dex`, `signoz`) it belongs to, for `up --only`.
    pub part: String,
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command when not empty.
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub ports: Vec<Port>,
    pub volumes: Vec<VolumeMount>,
    pub files: Vec<FileMount>,
    /// Services that must be ready (healthy, or exited 0 for one-shots) first.
    pub depends_on: Vec<String>,
    pub ready: Ready,
    /// How long `up` waits for it to be ready.
    pub timeout: Duration,
    /// Resource limits (`nofile`, `nproc`) the server needs beyond the engine's defaults.
    pub ulimits: Vec<Ulimit>,
    /// A one-shot that fails is started again this many times before `up` gives up
    /// (upstream restarts its migrators on failure: ClickHouse may still be settling).
    pub retries: u32,
}

/// One resource limit, soft and hard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

impl Ulimit {
    pub fn new(name: &str, soft: i64, hard: i64) -> Ulimit {
        Ulimit {
            name: name.into(),
            soft,
            hard,
        }
    }
}

/// What the engine does when a container stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Comes back after a reboot or a Docker restart; not after `down`, which removes it.
    UnlessStopped,
    /// A one-shot started again after a failure, at most this many times.
    OnFailure(u32),
    /// A one-shot whose exit code is its result.
    No,
}

impl Service {
    /// A service running `image` as it is: no ports, mounts or dependencies, ready once
    /// running, two minutes to get there.
    pub fn new(name: &str, part: &str, image: String) -> Service {
        Service {
            name: name.into(),
            part: part.into(),
            image,
            entrypoint: None,
            command: Vec::new(),
            env: Vec::new(),
            user: None,
            ports: Vec::new(),
            volumes: Vec::new(),
            files: Vec::new(),
            depends_on: Vec::new(),
            ready: Ready::Running,
            timeout: Duration::from_secs(120),
            ulimits: Vec::new(),
            retries: 0,
        }
    }

    pub fn restart(&self) -> Restart {
        match (&self.ready, self.retries) {
            (Ready::Completed, 0) => Restart::No,
            (Ready::Completed, n) => Restart::OnFailure(n),
            _ => Restart::UnlessStopped,
        }
    }
}

/// A listening port. With a bridge network `host` is published on 127.0.0.1; on the
/// host's network the server listens on `container` directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub container: u16,
    pub host: u16,
}

impl Port {
    pub fn same(port: u16) -> Port {
        Port {
            container: port,
            host: port,
        }
    }

    /// The port to reach from the host.
    pub fn published(&self, network: NetworkMode) -> u16 {
        match network {
            NetworkMode::Bridge => self.host,
            NetworkMode::Host => self.container,
        }
    }
}

/// A named volume (`<project>-<volume>`) mounted at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
}

/// One of the stack's files, mounted read-only at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    pub file: PathBuf,
    pub target: String,
}

/// When a service counts as up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// Docker's health check: this command, run in the container, exits 0.
    Healthy(Vec<String>),
    /// An HTTP GET of `path` on this published port, from the host, gets any answer below
    /// 500 (for images without a shell). HTTP rather than a bare TCP connect: with port
    /// publishing, Docker's proxy accepts connections before the server inside listens.
    Http { port: u16, path: String },
    /// A protocol exchange on this published port, from the host: `send` these bytes (or
    /// nothing), and the first answer starts with `expect` (Redis `PING`, NATS `INFO`, a
    /// PostgreSQL SSL request), for servers that speak no HTTP and ship no shell.
    Tcp { port: u16, send: Vec<u8>, expect: Vec<u8> },
    /// A one-shot: it has exited with code 0.
    Completed,
    /// It is running.
    Running,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StackError {
    #[error("service {service} depends on {missing}, which is not in the stack")]
    UnknownDependency { service: String, missing: String },
    #[error("services depend on each other in a cycle: {0}")]
    Cycle(String),
    #[error("service {service} mounts {file}, which the stack does not define")]
    UnknownFile { service: String, file: String },
    #[error("no service or part named {0:?} (known: {1})")]
    UnknownName(String, String),
    #[error("services {0} and {1} both use host port {2}")]
    PortClash(String, String, u16),
}

impl Stack {
    pub fn container_name(&self, service: &str) -> String {
        format!("{}-{service}", self.project)
    }

    pub fn volume_name(&self, volume: &str) -> String {
        format!("{}-{volume}", self.project)
    }

    pub fn network_name(&self) -> String {
        format!("{}-net", self.project)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Every volume name the services use, without the project prefix.
    pub fn volumes(&self) -> BTreeSet<String> {
        self.services
            .iter()
            .flat_map(|s| s.volumes.iter().map(|v| v.volume.clone()))
            .collect()
    }

    /// Services in dependency order (each after everything it depends on); checks that
    /// dependencies and mounted files exist and that no host port is used twice.
    pub fn ordered(&self) -> Result<Vec<&Service>, StackError> {
        let mut ports: Vec<(u16, &str)> = Vec::new();
        for service in &self.services {
            for dep in &service.depends_on {
                if self.service(dep).is_none() {
                    return Err(StackError::UnknownDependency {
                        service: service.name.clone(),
                        missing: dep.clone(),
                    });
                }
            }
            for mount in &service.files {
                if !self.files.iter().any(|f| f.path == mount.file) {
                    return Err(StackError::UnknownFile {
                        service: service.name.clone(),
                        file: mount.file.display().to_string(),
                    });
                }
            }
            for port in &service.ports {
                let published = port.published(self.network);
                if let Some((_, other)) = ports.iter().find(|(p, _)| *p == published) {
                    return Err(StackError::PortClash(
                        other.to_string(),
                        service.name.clone(),
                        published,
                    ));
                }
                ports.push((published, &service.name));
            }
        }
        let mut done: Vec<&Service> = Vec::new();
        while done.len() < self.services.len() {
            let next = self.services.iter().find(|s| {
                !done.iter().any(|d| d.name == s.name)
                    && s.depends_on.iter().all(|dep| done.iter().any(|d| &d.name == dep))
            });
            match next {
                Some(service) => done.push(service),
                None => {
                    let stuck: Vec<&str> = self
                        .services
                        .iter()
                        .filter(|s| !done.iter().any(|d| d.name == s.name))
                        .map(|s| s.name.as_str())
                        .collect();
                    return Err(StackError::Cycle(stuck.join(", ")));
                }
            }
        }
        Ok(done)
    }

    /// The stack reduced to the services named (or the parts named, such as `dex`) and
    /// everything they depend on.
    pub fn only(&self, names: &[String]) -> Result<Stack, StackError> {
        if names.is_empty() {
            return Ok(self.clone());
        }
        let mut keep: BTreeSet<String> = BTreeSet::new();
        for name in names {
            let matched: Vec<&Service> = self
                .services
                .iter()
                .filter(|s| &s.name == name || &s.part == name)
                .collect();
            if matched.is_empty() {
                let mut known: BTreeSet<&str> = self.services.iter().map(|s| s.part.as_str()).collect();
                known.extend(self.services.iter().map(|s| s.name.as_str()));
                return Err(StackError::UnknownName(
                    name.clone(),
                    known.into_iter().collect::<Vec<_>>().join(", "),
                ));
            }
            let mut todo: Vec<String> = matched.iter().map(|s| s.name.clone()).collect();
            while let Some(next) = todo.pop() {
                if keep.insert(next.clone())
                    && let Some(service) = self.service(&next)
                {
                    todo.extend(service.depends_on.iter().cloned());
                }
            }
        }
        let mut stack = self.clone();
        stack.services.retain(|s| keep.contains(&s.name));
        Ok(stack)
    }

    /// The address a service reaches `service` at: its name on the bridge network,
    /// loopback on the host's.
    pub fn address(network: NetworkMode, service: &str) -> String {
        match network {
            NetworkMode::Bridge => service.to_string(),
            NetworkMode::Host => "127.0.0.1".to_string(),
        }
    }
}

/// Our stack: Dex, then Signoz (ZooKeeper, ClickHouse, the telemetry-store migrator,
/// the collector and the UI), then the backends `settings` asks for.
pub fn devstack(settings: &Settings, identity: &Identity) -> Stack {
    let mut stack = Stack {
        project: settings.project.clone(),
        network: settings.network,
        services: Vec::new(),
        files: Vec::new(),
    };
    dex::add(&mut stack, settings, identity);
    signoz::add(&mut stack, settings);
    backends::add(&mut stack, &settings.backends);
    stack
}

/// `["CMD", ...]` health check command.
pub(crate) fn cmd(args: &[&str]) -> Ready {
    let mut test = vec!["CMD".to_string()];
    test.extend(args.iter().map(|a| a.to_string()));
    Ready::Healthy(test)
}
