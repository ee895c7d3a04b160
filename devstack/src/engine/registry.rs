//! Whether the registry an image comes from answers, for `doctor`: a missing image and
//! a registry that cannot be reached mean `up` will fail, so it should say so first.
//! Checked from this machine; the engine pulls through its own network and proxy
//! settings, which usually match on a laptop.

use super::Engine;

/// Docker Hub's registry, where images without a registry host come from.
const HUB: &str = "registry-1.docker.io";

/// The registry host of an image reference (`ghcr.io/dexidp/dex:v2` → `ghcr.io`;
/// `redis:7` and `signoz/signoz:v1` → Docker Hub).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => HUB,
    }
}

/// Loopback registries speak plain HTTP (the engine allows that for 127.0.0.0/8).
fn base_url(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    match name {
        "localhost" | "127.0.0.1" | "[::1]" => format!("http://{host}"),
        _ => format!("https://{host}"),
    }
}

impl Engine {
    /// Asks the registry of `image` (or, for Docker Hub, one of the engine's `mirrors`)
    /// for its API root; any HTTP answer, 401 included, means it is there. Returns the
    /// one that answered, or what each said.
    pub async fn reach_registry(&self, image: &str, mirrors: &[String]) -> Result<String, String> {
        let host = registry_of(image);
        let mut candidates: Vec<String> = vec![format!("{}/v2/", base_url(host))];
        if host == HUB {
            candidates.extend(mirrors.iter().map(|m| format!("{}/v2/", m.trim_end_matches('/'))));
        }
        let mut failures = Vec::new();
        for url in candidates {
            match self.http.get(&url).send().await {
                Ok(_) => return Ok(url),
                Err(e) => failures.push(format!("{url}: {}", cause(&e))),
            }
        }
        Err(failures.join("; "))
    }
}

/// The innermost cause (reqwest's own message is only "error sending request").
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_of_image_references() {
        assert_eq!(registry_of("ghcr.io/dexidp/dex:v2.45.1"), "ghcr.io");
        assert_eq!(registry_of("signoz/signoz:v0.129.0"), HUB);
        assert_eq!(registry_of("redis:7.4-alpine"), HUB);
        assert_eq!(registry_of("127.0.0.1:5000/mock:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/x:1"), "localhost");
        assert_eq!(base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(base_url("ghcr.io"), "https://ghcr.io");
    }
}
