//! Prints the API's OpenAPI document, the same one `GET /openapi.json` serves:
//! `cargo run --example openapi > openapi.json`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", async_api::openapi().to_pretty_json()?);
    Ok(())
}
