//! `kho`: the command line on top of kho-api. `kho serve` serves the HTTP API, `kho
//! maintain` compacts and checkpoints a store, `kho demo` is the one-command tour
//! (`demo/`: the province's feeds generated per stream and pushed through the API).

// Arrow and the Delta kernel allocate many short-lived buffers across threads; mimalloc
// handles that far better than glibc's allocator (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod demo;
mod start;

fn main() -> std::process::ExitCode {
    cli::main()
}
