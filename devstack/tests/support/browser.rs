//! A person's part of a device-code sign-in, done as a browser would: pages fetched with
//! cookies kept and redirects followed, HTML forms read and submitted. Enough for the
//! server-rendered pages of Dex and oidc-provider, nothing more (no scripts).

use regex::Regex;

/// A browser session: one cookie jar.
pub struct Browser {
    http: reqwest::Client,
}

/// A page as it arrived, with where it ended up after redirects.
pub struct Page {
    pub url: reqwest::Url,
    pub status: u16,
    pub body: String,
}

/// An HTML form: where it posts and the fields it would send.
#[derive(Debug)]
pub struct Form {
    pub action: reqwest::Url,
    pub fields: Vec<(String, String)>,
}

impl Browser {
    pub fn new() -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        Browser { http }
    }

    pub async fn get(&self, url: &str) -> Page {
        page(self.http.get(url).send().await.expect("GET"), url).await
    }

    /// Submits `form` (POST, form-encoded), following redirects.
    pub async fn submit(&self, form: &Form) -> Page {
        let sent = self.http.post(form.action.clone()).form(&form.fields).send().await;
        page(sent.expect("POST"), form.action.as_str()).await
    }
}

async fn page(response: reqwest::Response, asked: &str) -> Page {
    let url = response.url().clone();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_else(|e| panic!("{asked}: body: {e}"));
    Page { url, status, body }
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x3D;", "=")
        .replace("&#61;", "=")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let re = Regex::new(&format!(r#"(?i)\s{name}\s*=\s*("([^"]*)"|'([^']*)')"#)).expect("regex");
    re.captures(tag)
        .map(|c| unescape(c.get(2).or(c.get(3)).map_or("", |m| m.as_str())))
}

impl Page {
    /// The forms of the page, in order.
    pub fn forms(&self) -> Vec<Form> {
        let form = Regex::new(r"(?is)<form\b([^>]*)>(.*?)</form>").expect("regex");
        let input = Regex::new(r"(?is)<input\b[^>]*>").expect("regex");
        form.captures_iter(&self.body)
            .map(|c| {
                let action = attribute(&c[1], "action").unwrap_or_default();
                let fields = input
                    .find_iter(&c[2])
                    .filter_map(|tag| {
                        let name = attribute(tag.as_str(), "name")?;
                        Some((name, attribute(tag.as_str(), "value").unwrap_or_default()))
                    })
                    .collect();
                Form {
                    action: self.url.join(&action).expect("a form action URL"),
                    fields,
                }
            })
            .collect()
    }

    /// The only form with a field `name`; panics (showing the page) otherwise.
    pub fn form_with(&self, name: &str) -> Form {
        let mut found: Vec<Form> = self
            .forms()
            .into_iter()
            .filter(|f| f.fields.iter().any(|(n, _)| n == name))
            .collect();
        assert_eq!(found.len(), 1, "one form with {name:?} at {}: {}", self.url, self.body);
        found.remove(0)
    }
}

impl Form {
    /// Sets field `name` (added if the form had none).
    pub fn set(mut self, name: &str, value: &str) -> Form {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_string(),
            None => self.fields.push((name.to_string(), value.to_string())),
        }
        self
    }
}
