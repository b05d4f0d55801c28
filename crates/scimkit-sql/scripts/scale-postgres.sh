#!/usr/bin/env bash
# Loads 1,000,000 users into PostgreSQL (schema scimkit_scale in database test on
# 127.0.0.1:5432) and prints the plans and times of the translated look-ups.
# Not part of `cargo test`: it takes a few minutes and leaves the schema for more
# runs (drop it with: psql -h 127.0.0.1 -U postgres -d test -c 'DROP SCHEMA scimkit_scale CASCADE').
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-seed" ]; then
    time psql -q -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 -f scripts/seed-million.sql
fi
cargo run --release --quiet --example explain
