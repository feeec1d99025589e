//! Static assets compiled into the binary, served under content-hashed names
//! (`/assets/console.3f2a….css`) with a year-long immutable cache: a new build changes the name.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub struct Asset {
    /// `console.css`: how the code names it.
    pub name: &'static str,
    /// `console.<hash>.css`: how pages link it.
    pub hashed: String,
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

fn asset(name: &'static str, bytes: &'static [u8], content_type: &'static str) -> Asset {
    let digest = Sha256::digest(bytes);
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
    Asset { name, hashed: format!("{stem}.{hash}.{extension}"), bytes, content_type }
}

pub static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    vec![
        asset("console.css", include_bytes!("../../assets/console.css"), "text/css; charset=utf-8"),
        asset("console.js", include_bytes!("../../assets/console.js"), "text/javascript; charset=utf-8"),
        asset("public.css", include_bytes!("../../assets/public.css"), "text/css; charset=utf-8"),
        asset("record.css", include_bytes!("../../assets/record.css"), "text/css; charset=utf-8"),
    ]
});

/// The URL of an asset by its plain name.
pub fn url(name: &str) -> String {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| format!("/assets/{}", a.hashed))
        .unwrap_or_else(|| format!("/assets/{name}"))
}

/// `GET /assets/{file}`: only the current hashed names exist.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.hashed == file) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "no such asset")
            .into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}
