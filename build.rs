//! Assembles the `/docs` page (src/docs/page.html with Swagger UI's style and
//! script inline) and gzips it once, at build time: the function serves the
//! 0.5 MB gzip to every browser, where the 1.9 MB page would exceed an
//! Application Load Balancer's 1 MB response limit (see src/docs.rs).

use std::io::Write;
use std::path::Path;

fn main() {
    let docs = Path::new("src/docs");
    for file in ["page.html", "swagger-ui.css", "swagger-ui-bundle.js"] {
        println!("cargo:rerun-if-changed=src/docs/{file}");
    }
    let read = |file: &str| {
        std::fs::read_to_string(docs.join(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
    };
    let page = read("page.html")
        .replacen("/*swagger-ui.css*/", &read("swagger-ui.css"), 1)
        .replacen("/*swagger-ui-bundle.js*/", &read("swagger-ui-bundle.js"), 1);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(page.as_bytes()).expect("gzip the page");
    let gzipped = gzip.finish().expect("gzip the page");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out).join("docs.html.gz"), gzipped).expect("write the page");
}
