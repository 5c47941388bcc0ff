//! `serve` (the HTTP API), `token` (its access tokens) and `ui` (the web UI)
//! on the command line.

use crate::Failure;
use elixirscope_api::tokens::{self, Role};
use elixirscope_api::{ServeConfig, ServeTls};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Options of `elixirscope serve`.
pub struct ServeOpts {
    pub listen: SocketAddr,
    pub tls: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub insecure_plaintext: bool,
    pub cookie: Option<String>,
}

pub fn serve(home: &Path, o: ServeOpts) -> Result<u8, Failure> {
    let beyond_loopback = !o.listen.ip().is_loopback();
    let tls = match (&o.tls_cert, &o.tls_key) {
        (Some(cert), Some(key)) => ServeTls::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ if o.tls => ServeTls::Generated,
        _ if beyond_loopback && o.insecure_plaintext => {
            eprintln!(
                "WARNING: serving the API in PLAINTEXT on {} (--insecure-plaintext): tokens and data \
                 cross the network readable by anyone on the path",
                o.listen
            );
            ServeTls::Off
        }
        _ if beyond_loopback => ServeTls::Generated,
        _ => ServeTls::Off,
    };
    let cookie = elixirscope_capture::cookie::resolve(o.cookie.as_deref()).ok();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    elixirscope_api::serve(
        ServeConfig {
            home: home.to_owned(),
            listen: o.listen,
            tls,
            cookie,
        },
        stop,
        |addr, cert| {
            let scheme = if cert.is_some() || o.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            eprintln!("serving the ElixirScope API on {scheme}://{addr}/api (Ctrl-C to stop)");
            if let Some(c) = cert {
                eprintln!(
                    "its self-signed certificate is in {} (trust it with curl --cacert)",
                    c.display()
                );
            }
            if tokens::list(home).map(|t| t.is_empty()).unwrap_or(true) {
                eprintln!(
                    "no tokens yet: create one with `elixirscope token create NAME --role viewer`"
                );
            }
        },
    )?;
    Ok(0)
}

pub fn token_create(home: &Path, name: &str, role: &str) -> Result<u8, Failure> {
    let role = Role::parse(role).ok_or_else(|| {
        Failure::from(format!(
            "unknown role '{role}': choose viewer, operator or admin"
        ))
    })?;
    let secret = tokens::create(home, name, role)?;
    println!("{secret}");
    eprintln!(
        "token '{name}' ({}) created; this is the only time it is shown",
        role.name()
    );
    Ok(0)
}

pub fn token_list(home: &Path, json: bool) -> Result<u8, Failure> {
    let list = tokens::list(home)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("no tokens (create one with `elixirscope token create NAME --role viewer`)");
    }
    for t in list {
        println!("{:<24} {:<9} created {}", t.name, t.role.name(), t.created);
    }
    Ok(0)
}

pub fn token_revoke(home: &Path, name: &str) -> Result<u8, Failure> {
    tokens::revoke(home, name)?;
    eprintln!("token '{name}' revoked");
    Ok(0)
}

pub fn ui(home: &Path, session: Option<&str>, listen: SocketAddr) -> Result<u8, Failure> {
    // Resolve the session first: an unknown name fails here, in one line.
    let fragment = match session {
        Some(name) => {
            let s = elixirscope_query::Session::open(home, name)?;
            format!("#/s/{}", s.name())
        }
        None => String::new(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    elixirscope_ui::serve(
        elixirscope_ui::UiConfig {
            home: home.to_owned(),
            listen,
        },
        stop,
        |addr| {
            eprintln!("ElixirScope UI on http://{addr}/{fragment} (Ctrl-C to stop)");
        },
    )?;
    Ok(0)
}
