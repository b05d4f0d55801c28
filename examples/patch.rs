//! Applies a SCIM PatchOp to a resource, the way a service would: a tool for
//! debugging what an identity provider sends.
//!
//! ```text
//! cargo run --example patch -- RESOURCE.json PATCHOP.json [--strict]
//! cargo run --example patch -- tests/vectors/rfc7643/full-user.json tests/fixtures/patch/entra-update-user.json
//! ```
//!
//! The resource's type comes from its `schemas`. PATCHOP.json is a PatchOp body, or a
//! fixture whose `request` member is one. On success the patched resource is printed
//! as JSON and the exit status is 0; on failure the SCIM Error JSON is printed and the
//! exit status is 1. `--strict` follows RFC 7644 literally instead of accepting what
//! identity providers send.

use std::process::ExitCode;

use scimkit::patch::{self, PatchOptions};
use scimkit::{Error, ErrorResponse, PatchOp, Registry};
use serde_json::Value;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let strict = args.iter().any(|a| a == "--strict");
    let files: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [resource_file, patch_file] = files[..] else {
        eprintln!("usage: patch RESOURCE.json PATCHOP.json [--strict]");
        return ExitCode::from(2);
    };
    let options = if strict {
        PatchOptions::strict()
    } else {
        PatchOptions::lenient()
    };
    match run(resource_file, patch_file, &options) {
        Ok(resource) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&resource).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let body = serde_json::to_string_pretty(&ErrorResponse::from(&e)).unwrap_or_default();
            println!("{body}");
            ExitCode::from(1)
        }
    }
}

fn read_json(file: &str) -> Result<Value, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::bad_request(format!("cannot read {file}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid_syntax(format!("{file}: {e}")))
}

fn run(resource_file: &str, patch_file: &str, options: &PatchOptions) -> Result<Value, Error> {
    let registry = Registry::core();
    let resource = read_json(resource_file)?;
    let schema = registry.resource_type_of(&resource).ok_or_else(|| {
        Error::invalid_value(format!(
            "{resource_file}: its \"schemas\" name no known resource type"
        ))
    })?;
    let mut resource = schema.normalize(resource)?;
    let body = read_json(patch_file)?;
    let body = match body.get("request") {
        Some(request) if body.get("Operations").is_none() => request.clone(),
        _ => body,
    };
    let op: PatchOp = serde_json::from_value(body)
        .map_err(|e| Error::invalid_syntax(format!("{patch_file} is not a PatchOp: {e}")))?;
    patch::apply(&schema, &mut resource, &op, options)?;
    Ok(resource)
}
