//! The UI's files, embedded in the binary so the UI works offline: one page,
//! one script, one style sheet. No framework and no build step: the script is
//! plain JavaScript that draws on canvas and SVG.

/// `(path, content type, bytes)` of every asset.
pub const FILES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
];

/// The asset at `path`, if any.
pub fn get(path: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, ty, body)| (*ty, *body))
}
