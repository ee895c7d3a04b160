//! Operations on any gRPC method, `grpc.unary` and `grpc.server_stream`, as ghz and k6
//! have them: the method's descriptors come from `.proto` files compiled when the
//! scenario is read (protox, as the build compiles Prism's own), or from the server's
//! reflection when the run starts; each request is a JSON template (written as YAML in
//! the scenario) with placeholders, encoded per request ([`template`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prism_proxy::client::{MethodPath, PrismClient};
use prost_reflect::{DescriptorPool, MessageDescriptor};
use serde::{Deserialize, Serialize};

pub mod template;

pub use template::{Template, Vars};

/// Where the descriptors of `grpc.*` operations come from: `.proto` files, or (without
/// them) the server's reflection service when the run starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Protos {
    /// `.proto` files defining the methods, relative to the scenario file.
    #[serde(default)]
    pub protos: Vec<PathBuf>,
    /// Folders imports are resolved in, relative to the scenario file (default: the
    /// folder of each file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_paths: Vec<PathBuf>,
}

/// One method, resolved against its descriptors.
#[derive(Debug, Clone)]
pub struct Method {
    pub path: MethodPath,
    pub input: MessageDescriptor,
    pub server_streaming: bool,
    pub client_streaming: bool,
}

/// What a `grpc.*` operation sends, ready for the engine.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    pub template: Template,
    /// Added to the target's metadata on each call.
    pub metadata: tonic::metadata::MetadataMap,
    /// `grpc.server_stream`: messages read before the stream is closed (all when absent).
    pub messages: Option<u32>,
}

pub type SharedCall = Arc<Call>;

/// Compiles `protos` (paths relative to `base`, the scenario's folder) into descriptors.
pub fn compile(protos: &Protos, base: &Path) -> Result<DescriptorPool, String> {
    let files: Vec<PathBuf> = protos.protos.iter().map(|f| base.join(f)).collect();
    let mut includes: Vec<PathBuf> = protos.import_paths.iter().map(|d| base.join(d)).collect();
    if includes.is_empty() {
        includes = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
    }
    let mut compiler = protox::Compiler::new(&includes).map_err(|e| e.to_string())?;
    compiler.include_imports(true);
    compiler.open_files(&files).map_err(|e| e.to_string())?;
    Ok(compiler.descriptor_pool())
}

/// The descriptors of `services` (full names) from the reflection service of the server
/// `client` talks to.
pub async fn reflect(client: &PrismClient, services: &[String]) -> Result<DescriptorPool, String> {
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    let files = client
        .reflect(&names)
        .await
        .map_err(|e| format!("reflection of {}: {e}", names.join(", ")))?;
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files)
        .map_err(|e| format!("the server's descriptors do not build: {e}"))?;
    Ok(pool)
}

/// The service of `package.Service/Method`.
pub fn service_of(method: &str) -> Option<&str> {
    method.split_once('/').map(|(service, _)| service)
}

/// Resolves `package.Service/Method` in `pool`; the error says what the pool has.
pub fn resolve(pool: &DescriptorPool, method: &str) -> Result<Method, String> {
    let Some((service_name, method_name)) = method.split_once('/') else {
        return Err(format!("{method:?} is not package.Service/Method"));
    };
    let Some(service) = pool.get_service_by_name(service_name) else {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
        return Err(format!(
            "no service {service_name:?} in the descriptors (they have: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    };
    let Some(m) = service.methods().find(|m| m.name() == method_name) else {
        let known: Vec<String> = service.methods().map(|m| m.name().to_string()).collect();
        return Err(format!(
            "service {service_name} has no method {method_name:?} (it has: {})",
            known.join(", ")
        ));
    };
    let path = MethodPath::parse(&format!("/{service_name}/{method_name}")).map_err(|e| e.to_string())?;
    Ok(Method {
        path,
        input: m.input(),
        server_streaming: m.is_server_streaming(),
        client_streaming: m.is_client_streaming(),
    })
}
