//! Rebuilds the crate when a migration is added or changed: `embed_migrations!` reads
//! `migrations/` at compile time, but a proc macro cannot tell cargo which files it read
//! (see diesel_migrations' "Automatic rebuilds"), so a new migration was silently left out
//! of an incremental build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    // Naming a path turns off cargo's default (any file of the package); keep the manifest.
    println!("cargo:rerun-if-changed=Cargo.toml");
}
