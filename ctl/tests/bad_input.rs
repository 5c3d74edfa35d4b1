//! The corpus of malformed documents (tests/bad/*.yaml, one mistake each, the expected message
//! in `# expect:` lines at the top): applied by the real binary to a store holding
//! tests/data/baseline.yaml, each must exit non-zero with a message naming the field, and
//! leave every stored object and the store's revision exactly as they were, under `apply`
//! and `create` (or the verbs a `# verbs:` line names). Runs against an embedded store and
//! against a real etcd member.

mod support;

use std::path::PathBuf;

use support::{Fixture, data, show, stderr};

struct Case {
    path: PathBuf,
    expected: Vec<String>,
    verbs: Vec<String>,
}

fn corpus() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data("bad"))
        .expect("tests/bad exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read a corpus file");
            let expected: Vec<String> = text
                .lines()
                .filter_map(|line| line.strip_prefix("# expect: "))
                .map(str::to_string)
                .collect();
            assert!(
                !expected.is_empty(),
                "{} has no `# expect:` line",
                path.display()
            );
            let verbs = text
                .lines()
                .find_map(|line| line.strip_prefix("# verbs: "))
                .unwrap_or("apply create")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            Case {
                path,
                expected,
                verbs,
            }
        })
        .collect()
}

fn every_bad_document_is_refused_by_field_and_changes_nothing(fixture: Fixture) {
    fixture.apply(&data("data/baseline.yaml"));
    let corpus = corpus();
    assert!(corpus.len() >= 40, "the corpus shrank to {}", corpus.len());
    let mut failures = Vec::new();
    for Case {
        path,
        expected,
        verbs,
    } in &corpus
    {
        let before = fixture.dump();
        let file = path.to_str().expect("a UTF-8 path");
        for verb in verbs {
            let output = fixture.run(&[verb, "-f", file]);
            let message = stderr(&output);
            let missing: Vec<&String> = expected
                .iter()
                .filter(|fragment| !message.contains(fragment.as_str()))
                .collect();
            if output.status.success() || !missing.is_empty() {
                failures.push(format!(
                    "{verb} -f {}: expected a failure mentioning {missing:?}\n{}",
                    path.display(),
                    show(&output)
                ));
            }
        }
        let after = fixture.dump();
        if before != after {
            failures.push(format!(
                "{} changed the store:\nbefore:\n{before}\nafter:\n{after}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_bad_document_is_refused_by_field_and_changes_nothing_on_the_embedded_store() {
    every_bad_document_is_refused_by_field_and_changes_nothing(Fixture::embedded());
}

#[test]
fn every_bad_document_is_refused_by_field_and_changes_nothing_on_etcd() {
    every_bad_document_is_refused_by_field_and_changes_nothing(Fixture::etcd());
}
