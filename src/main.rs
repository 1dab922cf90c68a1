fn main() {
    std::process::exit(avac::cli::main());
}
