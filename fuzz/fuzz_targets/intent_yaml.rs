//! Intent YAML through the entry point `render --dir` uses: the files of a cluster folder parsed, validated
//! and rendered (`tree::render_tree` with the renderer `render` builds: embedded templates, cluster
//! `eu-prod-1`), and the result formatted as `render` prints it.
//! Input: up to 8 manifest files separated by NUL bytes; the last part also names a file (hostile names are
//! refused, never echoed raw), and the output must hold exactly the documents rendered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vworkspace_operator::cli::render::{to_json, to_yaml};
use vworkspace_operator::intent::SourceFile;
use vworkspace_operator::render::{Renderer, renderer};
use vworkspace_operator::tree::render_tree;

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
            } else if i == 7 {
                format!(
                    "clusters/{CLUSTER}/namespaces/team-alpha/{}.yaml",
                    String::from_utf8_lossy(part)
                )
            } else {
                format!("clusters/{CLUSTER}/namespaces/team-alpha/intent-{i}.yaml")
            },
            data: part.to_vec(),
        })
        .collect();
    RENDERER.with(|renderer| {
        let result = render_tree(&files, renderer, Some(CLUSTER));
        if let Ok(yaml) = to_yaml(&result) {
            // Whatever the names, the output holds the rendered documents and nothing else.
            // (Separators start a line; inside a document every line is indented or quoted.)
            let docs = yaml.lines().filter(|l| l.starts_with("---")).count();
            assert_eq!(docs, result.objects().count(), "{yaml}");
        }
        for p in &result.problems {
            let line = vworkspace_operator::escape::Esc(p).to_string();
            assert!(!line.chars().any(vworkspace_operator::escape::is_hostile));
        }
        for url in files
            .iter()
            .filter_map(|f| std::str::from_utf8(&f.data).ok())
        {
            let _ = vworkspace_operator::validate::hosts::chart_host_refusal(url, &[]);
        }
        let _ = to_json(&result);
    });
});
