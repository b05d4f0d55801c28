//! Explains a SCIM filter: prints how it parses and whether a resource matches.
//!
//! ```text
//! cargo run --example filter -- 'emails[type eq "work" and value co "@example.com"]' tests/vectors/rfc7643/full-user.json
//! ```
//!
//! The resource's type comes from its `schemas`; with no file, only the parse is shown.
//! Exits with status 0 when the resource matches (or the filter parses, with no file),
//! 1 when it does not match, and 2 on an error, which is printed as the SCIM Error JSON.

use std::process::ExitCode;

use scimkit::filter::{Filter, FilterOptions};
use scimkit::{Error, ErrorResponse, Registry};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(filter_text) = args.first() else {
        eprintln!("usage: filter FILTER [RESOURCE.json]");
        return ExitCode::from(2);
    };
    match run(filter_text, args.get(1).map(String::as_str)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let body = serde_json::to_string_pretty(&ErrorResponse::from(&e)).unwrap_or_default();
            println!("{body}");
            ExitCode::from(2)
        }
    }
}

fn run(filter_text: &str, resource_file: Option<&str>) -> Result<bool, Error> {
    let filter = FilterOptions::default().parse(filter_text)?;
    println!("canonical: {filter}");
    println!("tree:");
    print_tree(&filter, 1);
    let Some(file) = resource_file else {
        return Ok(true);
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::bad_request(format!("cannot read {file}: {e}")))?;
    let resource: serde_json::Value = serde_json::from_str(&text)?;
    let registry = Registry::core();
    let schema = registry.resource_type_of(&resource).ok_or_else(|| {
        Error::invalid_value(format!(
            "{file}: its \"schemas\" name no known resource type"
        ))
    })?;
    filter.check(&schema)?;
    let matched = filter.matches(&schema, &resource);
    println!(
        "{} {file}",
        if matched { "matches" } else { "does not match" }
    );
    Ok(matched)
}

fn print_tree(filter: &Filter, depth: usize) {
    let pad = "  ".repeat(depth);
    match filter {
        Filter::Compare(attr, op, value) => println!("{pad}compare {attr} {op} {value}"),
        Filter::Present(attr) => println!("{pad}present {attr}"),
        Filter::And(parts) | Filter::Or(parts) => {
            println!(
                "{pad}{}",
                if matches!(filter, Filter::And(_)) {
                    "and"
                } else {
                    "or"
                }
            );
            for part in parts {
                print_tree(part, depth + 1);
            }
        }
        Filter::Not(inner) => {
            println!("{pad}not");
            print_tree(inner, depth + 1);
        }
        Filter::ValuePath(attr, inner) => {
            println!("{pad}each value of {attr} where");
            print_tree(inner, depth + 1);
        }
    }
}
