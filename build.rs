//! Compiles `src/index/faiss_shim.cpp` against the FAISS headers that
//! `faiss-sys` installed (its build exports their root as `DEP_FAISS_C_ROOT`).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=src/index/faiss_shim.cpp");
    println!("cargo::rerun-if-env-changed=DEP_FAISS_C_ROOT");
    let Some(root) = env::var_os("DEP_FAISS_C_ROOT") else {
        panic!("faiss-sys did not export DEP_FAISS_C_ROOT (its `static` feature builds FAISS)");
    };
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include(PathBuf::from(root).join("include"))
        .file("src/index/faiss_shim.cpp")
        .compile("pulsedb_faiss_shim");
}
