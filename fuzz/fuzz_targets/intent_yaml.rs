//! Intent YAML through the entry point `render --dir` uses: the files of a cluster folder parsed, validated
//! and rendered (`render::render_tree` with the renderer `render` builds: embedded templates, cluster
//! `eu-prod-1`), and the result formatted as `render` prints it.
//! Input: up to 8 manifest files separated by NUL bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vworkspace_operator::cli::render::{renderer, to_json, to_yaml};
use vworkspace_operator::intent::SourceFile;
use vworkspace_operator::render::{Renderer, render_tree};

const CLUSTER: &str = "eu-prod-1";

thread_local! {
    static RENDERER: Renderer = renderer(None, Some(CLUSTER), "velero").expect("the embedded templates load");
}

fuzz_target!(|data: &[u8]| {
    let files: Vec<SourceFile> = data
        .split(|&b| b == 0)
        .take(8)
        .enumerate()
        .map(|(i, part)| SourceFile {
            path: if i == 0 {
                format!("clusters/{CLUSTER}/namespaces/team-alpha/namespace.yaml")
            } else {
                format!("clusters/{CLUSTER}/namespaces/team-alpha/intent-{i}.yaml")
            },
            data: part.to_vec(),
        })
        .collect();
    RENDERER.with(|renderer| {
        let result = render_tree(&files, renderer, Some(CLUSTER));
        let _ = to_yaml(&result);
        let _ = to_json(&result);
    });
});
