// Arrow and the Delta kernel allocate many short-lived buffers across threads; mimalloc
// handles that far better than glibc's allocator (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kho_api::cli::main()
}
