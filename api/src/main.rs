fn main() -> std::process::ExitCode {
    kho_api::cli::main()
}
