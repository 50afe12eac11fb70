//! Cost of one offline gitsign verification (the real offline.commit vector from sigstore/gitsign
//! against the public-good trusted root), and of parsing the trusted root.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vworkspace_operator::git::gitsign::{GitsignIdentity, TrustedRoot, verify};

const OFFLINE: &str = include_str!("../tests/data/gitsign/offline.commit");
const PUBLIC_GOOD: &str =
    include_str!("../tests/data/gitsign/sigstore-public-good-trusted_root.json");

/// (commit without its gpgsig header, signature with git's continuation spaces removed), by the operator's own
/// strict commit parser.
fn split_commit(raw: &str) -> (Vec<u8>, Vec<u8>) {
    let commit = vworkspace_operator::git::commit::parse(raw.as_bytes(), gix::hash::Kind::Sha1)
        .expect("a well-formed commit");
    (commit.payload, commit.signature.unwrap_or_default())
}

fn bench(c: &mut Criterion) {
    let (payload, signature) = split_commit(OFFLINE);
    let root = TrustedRoot::from_json(PUBLIC_GOOD).expect("trusted root parses");
    let identities =
        [
            GitsignIdentity::exact("https://accounts.google.com", "billy@chainguard.dev")
                .expect("identity"),
        ];
    verify(&signature, &payload, &root, &identities).expect("the vector verifies");

    c.bench_function("gitsign_verify_offline_commit", |b| {
        b.iter(|| {
            verify(
                black_box(&signature),
                black_box(&payload),
                &root,
                &identities,
            )
            .expect("verifies")
        })
    });
    c.bench_function("gitsign_trusted_root_parse", |b| {
        b.iter(|| TrustedRoot::from_json(black_box(PUBLIC_GOOD)).expect("parses"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
