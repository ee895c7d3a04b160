//! `cargo test -p acceptance [-- FILTER]`: every suite against every backend and through
//! the proxy. See acceptance/README.md.

fn main() -> std::process::ExitCode {
    acceptance::runner::main()
}
